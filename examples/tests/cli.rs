//! The `nabij` binary end to end: JSON for scripts, the demo, and exit codes on bad input.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use serde_json::Value;
use tempfile::TempDir;

/// The key the tests' stores are encrypted with (64 hex digits).
const TEST_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A scratch folder with a store in it, and the binary run there.
struct Cli {
    dir: TempDir,
}

impl Cli {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn store(&self) -> String {
        self.dir.path().join("test.db").display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.bare();
        c.arg("--store").arg(self.store()).args(args);
        c
    }

    /// The binary in the scratch folder with the tests' store key in the environment (as a
    /// user's shell profile would set it) and nothing else of ours.
    fn bare(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nabij"));
        c.current_dir(self.dir.path())
            .env_remove("NABIJ_STORE")
            .env_remove("COLUMNS")
            .env_remove("NABIJ_STORE_KEY_FILE")
            .env("NABIJ_STORE_KEY", TEST_KEY);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run nabij")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nabij");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait for nabij")
    }

    /// Runs with `--json`, asserts success and one JSON value on stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        parse_ok(&self.run(&all), args)
    }

    /// Runs and asserts failure: the exit code and stderr.
    fn fail(&self, args: &[&str]) -> (i32, String) {
        failure(&self.run(args), args)
    }
}

fn parse_ok(out: &Output, args: &[&str]) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nabij {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("nabij {args:?}: not one JSON value ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

fn failure(out: &Output, args: &[&str]) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "nabij {args:?} should fail");
    assert!(!stderr.contains("panicked"), "nabij {args:?} panicked: {stderr}");
    (out.status.code().expect("exit code, not a signal"), stderr)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

#[test]
fn case_note_list_search_show_history_in_json() {
    let cli = Cli::new();
    let me = cli.json(&["profile", "set-name", "Fatima (wijkwerker)"]);
    assert_eq!(me["display_name"], "Fatima (wijkwerker)");
    assert!(!s(&me["device_key"]).is_empty());

    let case = cli.json(&[
        "case",
        "create",
        "--subject",
        "Familie T.",
        "--tag",
        "Wonen",
        "--at-stake",
        "De woning houden",
    ]);
    let id = s(&case["id"]).to_string();
    assert_eq!(case["subject"], "Familie T.");
    assert_eq!(case["tags"], serde_json::json!(["wonen"]));
    assert_eq!(case["status"], "open");

    let note = cli.json(&[
        "note",
        "add",
        &id,
        "--kind",
        "observation",
        "De wasmachine draait alles op zestig graden.",
    ]);
    assert_eq!(note["kind"], "observation");
    assert_eq!(note["case_id"], id.as_str());
    assert_eq!(note["author"]["name"], "Fatima (wijkwerker)");
    let note_id = s(&note["id"]).to_string();

    // Text from stdin, and a case named by its 8-character prefix.
    let out = cli.run_with_stdin(
        &["--json", "note", "add", &id[..8], "--kind", "reflection", "-"],
        "Ik keek eerst mee.\n",
    );
    let reflection = parse_ok(&out, &["note add -"]);
    assert_eq!(reflection["text"], "Ik keek eerst mee.");
    assert_eq!(reflection["kind"], "reflection");

    let edited = cli.json(&[
        "note",
        "edit",
        &id,
        &note_id[..8],
        "De wasmachine draait alles samen op zestig graden.",
    ]);
    assert_eq!(edited["text"], "De wasmachine draait alles samen op zestig graden.");

    let list = cli.json(&["case", "list"]);
    let list = list.as_array().expect("case list is an array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["note_count"], 2);
    assert_eq!(cli.json(&["case", "list", "--tag", "wonen"]).as_array().map(Vec::len), Some(1));
    assert_eq!(cli.json(&["case", "list", "--status", "closed"]).as_array().map(Vec::len), Some(0));

    let hits = cli.json(&["search", "wasmachine"]);
    let hits = hits.as_array().expect("search gives an array");
    let hit = hits.iter().find(|h| h["kind"] == "note").expect("the note is found");
    assert_eq!(hit["doc_id"], id.as_str());
    assert_eq!(hit["note_id"], note_id.as_str());
    assert!(s(&hit["snippet"]).contains("[wasmachine]"), "snippet marks the match: {hit}");
    assert_eq!(hit["title"], "Familie T.");

    let shown = cli.json(&["case", "show", &id]);
    assert_eq!(shown["case"]["subject"], "Familie T.");
    assert_eq!(shown["case"]["at_stake"], "De woning houden");
    let notes = shown["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["id"], note_id.as_str(), "timeline is oldest first");
    assert_eq!(shown["learning_points"], serde_json::json!([]));

    let history = cli.json(&["history", &id]);
    let history = history.as_array().expect("history is an array");
    assert_eq!(history.len(), 4, "create, two notes, one edit: {history:?}");
    assert!(history.iter().all(|h| h["author"] == "Fatima (wijkwerker)"));
    assert_eq!(history[0]["device"], me["device_key"]);
    assert!(s(&history[3]["summary"]).starts_with("Edited note"));

    // The human output shows the same things.
    let out = cli.run(&["case", "show", &id[..6]]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Familie T."), "{text}");
    assert!(text.contains("Timeline (2 notes)"), "{text}");
    assert!(text.contains("alles samen op zestig graden"), "{text}");
}

#[test]
fn case_fields_agreements_learning_points_and_meetings() {
    let cli = Cli::new();
    let net = cli.json(&["network", "create", "Wijknetwerk Oost"]);
    let net_id = s(&net["id"]).to_string();
    let case = cli.json(&["case", "create", "--subject", "Meneer D.", "--network", &net_id]);
    let id = s(&case["id"]).to_string();
    assert_eq!(case["networks"], serde_json::json!([net_id]));

    let updated = cli.json(&[
        "case",
        "update",
        &id,
        "--caimer",
        "context=Weduwnaar, woont alleen",
        "--consent",
        "given",
        "--consent-scope",
        "casusbespreking",
        "--consent-date",
        "2025-03-01",
        "--add-tag",
        "ouderen",
    ]);
    assert_eq!(updated["caimer"]["context"], "Weduwnaar, woont alleen");
    assert_eq!(updated["consent"]["status"], "given");
    assert_eq!(updated["consent"]["date"], "2025-03-01");
    assert_eq!(updated["tags"], serde_json::json!(["ouderen"]));

    let added = cli.json(&[
        "case",
        "add-item",
        &id,
        "agreement",
        "Kennismaking met de POH",
        "--owner",
        "Marleen",
        "--due",
        "2025-03-08",
    ]);
    let item = s(&added["item_id"]).to_string();
    assert_eq!(added["case"]["agreements"][0]["done"], false);
    let done = cli.json(&["case", "agreement-done", &id, &item[..6]]);
    assert_eq!(done["agreements"][0]["done"], true);

    let lp = cli.json(&[
        "lp",
        "create",
        "--title",
        "Vermijden is schaamte",
        "--case",
        &id,
        "--source",
        "Baart (2001)",
    ]);
    let lp_id = s(&lp["id"]).to_string();
    assert_eq!(lp["status"], "proposed");

    let meeting = cli.json(&[
        "meeting",
        "create",
        "--date",
        "2025-03-10",
        "--place",
        "Buurthuis",
        "--participant",
        "Fatima",
        "--agenda",
        &id,
        "--network",
        &net_id,
    ]);
    let m_id = s(&meeting["id"]).to_string();
    let meeting = cli.json(&[
        "meeting",
        "update",
        &m_id,
        "--minutes",
        "Besproken.",
        "--add-lp",
        &lp_id,
        "--agreement",
        "Terugkoppelen aan de huisarts: tijd:Marleen:2025-03-17",
    ]);
    assert_eq!(meeting["minutes"], "Besproken.");
    assert_eq!(meeting["agreements"][0]["text"], "Terugkoppelen aan de huisarts: tijd");
    assert_eq!(meeting["agreements"][0]["owner"], "Marleen");
    assert_eq!(meeting["agreements"][0]["due"], "2025-03-17");

    let lp = cli.json(&[
        "lp",
        "update",
        &lp_id,
        "--status",
        "discussed",
        "--meeting",
        &m_id,
        "--perspective",
        "client-voice:Meneer D.:Hij kwam gewoon koffie drinken.",
        "--perspective",
        "dissent:woonconsulent:Wachten heeft een prijs: de termijn loopt.",
    ]);
    assert_eq!(lp["status"], "discussed");
    assert_eq!(lp["meeting"], m_id.as_str());
    assert_eq!(lp["perspectives"][0]["kind"], "client_voice");
    assert_eq!(lp["perspectives"][1]["text"], "Wachten heeft een prijs: de termijn loopt.");

    let shown = cli.json(&["meeting", "show", &m_id]);
    assert_eq!(shown["agenda"][0]["id"], id.as_str());
    assert_eq!(shown["learning_points"][0]["id"], lp_id.as_str());
    assert_eq!(shown["meeting"]["place"], "Buurthuis");

    let citing = cli.json(&["case", "show", &id]);
    assert_eq!(citing["learning_points"][0]["id"], lp_id.as_str());
    assert_eq!(
        cli.json(&["lp", "list", "--status", "discussed"]).as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(cli.json(&["meeting", "list"]).as_array().map(Vec::len), Some(1));

    let members = cli.json(&["network", "show", &net_id[..8]]);
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(cli.json(&["check"])["ok"], true);
    assert_eq!(cli.json(&["reindex"])["documents"], 4);
}

#[test]
fn demo_seeds_a_day_and_shows_what_a_worker_sees() {
    let cli = Cli::new();
    let run_demo = || {
        let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
            .current_dir(cli.dir.path())
            .env_remove("NABIJ_STORE")
            .arg("demo")
            .output()
            .expect("run demo");
        assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run_demo();
    for section in [
        "Your cases, newest activity first",
        "A case and its timeline",
        "The casusbespreking",
        "A learning point citing",
        "Search “schaamte”",
        "Wijknetwerk Oost",
        "Timeline (5 notes)",
        "client's voice",
        "dissent",
        "Agreements",
        "Minutes",
        "was changed on two devices at once",
        "[schaamte]",
    ] {
        assert!(text.contains(section), "demo output lacks {section:?}:\n{text}");
    }
    assert!(text.lines().count() < 160, "demo output should stay short");
    let store = cli.dir.path().join("nabij-demo.db");
    assert!(store.exists());

    // Running it again starts over instead of doubling the data.
    run_demo();
    let list = |store: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
            .args(["--json", "--store"])
            .arg(store)
            .args(["case", "list"])
            .output()
            .expect("run nabij");
        parse_ok(&out, &["case", "list"])
    };
    let cases = list(&store);
    let cases = cases.as_array().expect("cases");
    assert_eq!(cases.len(), 4);
    assert_eq!(cases.iter().filter(|c| c["has_conflicts"] == true).count(), 1);

    // The store is a normal one: history names colleagues from the network.
    let mother = cases.iter().find(|c| s(&c["subject"]).starts_with("Moeder")).expect("case");
    let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
        .args(["--json", "--store"])
        .arg(&store)
        .args(["history", s(&mother["id"])])
        .output()
        .expect("run nabij");
    let history = parse_ok(&out, &["history"]);
    let authors: Vec<&str> =
        history.as_array().expect("history").iter().filter_map(|h| h["author"].as_str()).collect();
    assert!(authors.contains(&"Sem Bakker (jongerenwerker)"), "{authors:?}");
    assert!(authors.contains(&"Fatima Amrani (wijkwerker)"), "{authors:?}");

    // Setting the consent again settles the conflict the demo left; the rest stays.
    let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
        .args(["--json", "--store"])
        .arg(&store)
        .args(["case", "update", &s(&mother["id"])[..8], "--consent", "given"])
        .args(["--consent-scope", "Wijknetwerk Oost, casusbespreking"])
        .output()
        .expect("run nabij");
    let case = parse_ok(&out, &["case", "update"]);
    assert_eq!(case["conflicts"], serde_json::json!([]), "{case}");
    assert_eq!(case["consent"]["scope"], "Wijknetwerk Oost, casusbespreking");
    assert!(case["consent"]["date"].is_string(), "the date is kept");

    // --json: one value with every section.
    let explicit = cli.dir.path().join("other-demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
        .args(["--json", "--store"])
        .arg(&explicit)
        .arg("demo")
        .output()
        .expect("run demo");
    let v = parse_ok(&out, &["--json", "demo"]);
    for key in ["cases", "case", "meeting", "learning_point", "search", "network"] {
        assert!(!v[key].is_null(), "demo JSON lacks {key}");
    }
    assert_eq!(v["network"]["members"].as_array().map(Vec::len), Some(5));
    assert!(!v["search"]["hits"].as_array().expect("hits").is_empty());

    // A store given explicitly that already holds data is not seeded over.
    let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
        .arg("--store")
        .arg(&explicit)
        .arg("demo")
        .output()
        .expect("run demo");
    assert_eq!(failure(&out, &["demo"]).0, 2);
}

#[test]
fn bad_input_gives_one_line_and_the_right_exit_code() {
    let cli = Cli::new();
    // Reading a store that does not exist: storage error, and no file is made.
    let (code, err) = cli.fail(&["case", "list"]);
    assert_eq!(code, 4, "{err}");
    assert!(!Path::new(&cli.store()).exists());

    let case = cli.json(&["case", "create", "--subject", "Familie T."]);
    let id = s(&case["id"]).to_string();

    let cases: &[(&[&str], i32)] = &[
        (&["case", "show", "not-an-id"], 2),
        (&["case", "show", "abc"], 2),
        (&["case", "show", "zzzz"], 3),
        (&["case", "show", &"1".repeat(28)], 2),
        (&["case", "show", "2ZNQ1KAo2ZNQ1KAo2ZNQ1KAo2ZNQ"], 2),
        (&["case", "create", "--subject", "   "], 2),
        (&["case", "update", &id], 2),
        (&["case", "update", &id, "--caimer", "weather=sunny"], 2),
        (&["case", "update", &id, "--caimer", "no equals sign"], 2),
        (&["case", "update", &id, "--consent", "given", "--consent-date", "2023-02-29"], 2),
        (&["case", "add-item", &id, "agreement", "x", "--due", "tomorrow"], 2),
        (&["case", "agreement-done", &id, "zzzz"], 3),
        (&["note", "add", &id, "--kind", "gossip", "text"], 2),
        (&["note", "add", &id, "  "], 2),
        (&["note", "show", &id, "zzzz"], 3),
        (&["meeting", "create", "--date", "2025-13-01"], 2),
        (&["meeting", "create", "--date", "next week"], 2),
        (&["lp", "create", "--title", "x", "--case", "zzzz"], 3),
        (&["lp", "show", &id], 3),
        (&["meeting", "show", &id], 3),
        (&["history", "zzzzzz"], 3),
        (&["network", "add-member", &id, "--name", "x", "--device", "nope"], 2),
        (&["search"], 2),
        (&["no-such-command"], 2),
    ];
    for (args, want) in cases {
        let (code, err) = cli.fail(args);
        assert_eq!(code, *want, "nabij {args:?}: {err}");
        if *want != 2 || !err.starts_with("error:") {
            // Our own errors (not clap's usage text) are one line.
            assert_eq!(err.trim_end().lines().count(), 1, "nabij {args:?}: {err}");
        }
    }

    // --json errors are one JSON line on stderr.
    let (code, err) = cli.fail(&["--json", "case", "show", "zzzz"]);
    assert_eq!(code, 3);
    let v: Value = serde_json::from_str(err.trim()).expect("JSON error");
    assert_eq!(v["error"], "not_found");
    assert_eq!(v["exit_code"], 3);

    // A file that is not a store is refused untouched.
    let path = cli.dir.path().join("notes.txt");
    std::fs::write(&path, "boodschappen: melk").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_nabij"))
        .arg("--store")
        .arg(&path)
        .arg("whoami")
        .output()
        .expect("run nabij");
    assert_eq!(failure(&out, &["whoami"]).0, 4);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "boodschappen: melk");
}

/// Two terminals: one member adds the other's card, listens, and the other syncs by ticket.
#[test]
fn listen_and_sync_by_ticket_bring_a_new_device_into_the_network() {
    let host = Cli::new();
    let guest = Cli::new();
    host.json(&["profile", "set-name", "Fatima"]);
    guest.json(&["profile", "set-name", "Joost"]);
    let network = host.json(&["network", "create", "Wijknetwerk Oost"]);
    let network = s(&network["id"]).to_string();
    host.json(&["case", "create", "--subject", "Meneer D.", "--network", &network]);

    // The new device shows its card; the admin invites it by the card alone.
    let card = guest.json(&["card"]);
    let card = s(&card["card"]).to_string();
    assert!(card.starts_with("nabijcard1"), "{card}");
    let invited = host.json(&["network", "invite", &network, "--card", &card]);
    let invitation = s(&invited["invitation"]).to_string();
    assert!(invitation.starts_with("nabijinvite1"), "{invited}");
    let shown = host.json(&["network", "show", &network]);
    assert_eq!(shown["members"].as_array().expect("members").len(), 2, "{shown}");

    // A damaged ticket is refused as invalid input before anything is dialled.
    let (code, err) = guest.fail(&["sync", "nabij1notaticket"]);
    assert_eq!(code, 2, "{err}");

    // Until its user accepts the invitation, the guest takes nothing of the network.
    let (mut listener, ticket) = listen(&host);
    let report = guest.json(&["sync", &ticket]);
    assert_eq!(report["documents_received"], 0, "not accepted yet: {report}");
    listener.0.take().expect("child").wait_with_output().expect("listener");
    // A damaged invitation is invalid input; the real one is accepted.
    let (code, err) = guest.fail(&["network", "join", &invitation[..invitation.len() - 2]]);
    assert_eq!(code, 2, "{err}");
    let joined = guest.json(&["network", "join", &invitation]);
    assert_eq!(joined["name"], "Wijknetwerk Oost", "{joined}");

    let (mut listener, ticket) = listen(&host);
    let report = guest.json(&["sync", &ticket]);
    assert_eq!(report["documents_received"], 2, "the network and its case: {report}");
    let cases = guest.json(&["case", "list"]);
    assert_eq!(cases.as_array().expect("cases").len(), 1, "{cases}");

    let served = listener.0.take().expect("child").wait_with_output().expect("listener");
    let served = parse_ok(&served, &["listen"]);
    assert_eq!(served["ticket"], ticket.as_str());
    assert_eq!(served["sessions"][0]["documents_sent"], 2, "{served}");
}

/// `host` listens on loopback for one session (`nabij --json listen --sessions 1`): the
/// listening process and its ticket, once it is written.
fn listen(host: &Cli) -> (KillOnDrop, String) {
    let ticket_file = host.dir.path().join("ticket");
    let _ = std::fs::remove_file(&ticket_file);
    let listener = host
        .command(&[
            "--json",
            "listen",
            "--bind",
            "127.0.0.1:0",
            "--sessions",
            "1",
            "--ticket-file",
            &ticket_file.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn listen");
    let listener = KillOnDrop(Some(listener));
    // The listener writes the ticket once it listens; wait for it, boundedly.
    for _ in 0..600 {
        if let Ok(t) = std::fs::read_to_string(&ticket_file)
            && t.ends_with('\n')
        {
            let ticket = t.trim().to_string();
            assert!(ticket.starts_with("nabij1"), "{ticket}");
            return (listener, ticket);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no ticket within 30 s");
}

/// Two terminals: the coordinator (the network's creator, its admin) removes a colleague's
/// lost phone; the colleague's own device may not remove anyone, and once removed wipes the
/// network
/// at the next meeting.
#[test]
fn an_admin_removes_a_lost_phone_and_a_member_may_not() {
    let admin = Cli::new();
    let member = Cli::new();
    admin.json(&["profile", "set-name", "Fatima"]);
    member.json(&["profile", "set-name", "Joost"]);
    let admin_key = s(&admin.json(&["whoami"])["device_key"]).to_string();
    let phone = s(&member.json(&["whoami"])["device_key"]).to_string();
    let network = admin.json(&["network", "create", "Wijknetwerk Oost"]);
    let network = s(&network["id"]).to_string();
    let card = member.json(&["card"]);
    let invited = admin.json(&["network", "invite", &network, "--card", s(&card["card"])]);
    member.json(&["network", "join", s(&invited["invitation"])]);

    // Roles: the creator is admin, a member added by card is member. (The JSON spells roles
    // and reasons as the core's serde does; compared without case.)
    let role_of = |shown: &Value, name: &str| -> String {
        let members = shown["members"].as_array().expect("members");
        let m = members.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{shown}"));
        s(&m["role"]).to_lowercase()
    };
    let shown = admin.json(&["network", "show", &network]);
    assert_eq!(role_of(&shown, "Fatima"), "admin", "{shown}");
    assert_eq!(role_of(&shown, "Joost"), "member", "{shown}");
    assert_eq!(shown["removed"], serde_json::json!([]));
    let out = admin.run(&["network", "show", &network[..8]]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Fatima  · admin") && text.contains("Joost  · member"), "{text}");

    // The member's device receives the network at a meeting, and sees the same roles.
    let (mut listener, ticket) = listen(&admin);
    member.json(&["sync", &ticket]);
    let served = listener.0.take().expect("child").wait_with_output().expect("listener");
    assert!(served.status.success(), "{}", String::from_utf8_lossy(&served.stderr));
    let theirs = member.json(&["network", "show", &network]);
    assert_eq!(role_of(&theirs, "Fatima"), "admin", "{theirs}");

    // A member may not remove a device or change a role: exit code 5, nothing written.
    for args in [
        &["network", "remove-device", &network, &admin_key[..8], "--reason", "lost"][..],
        &["network", "remove-member", &network, "Fatima", "--reason", "left"][..],
        &["network", "role", &network, "Joost", "admin"][..],
    ] {
        let (code, err) = member.fail(args);
        assert_eq!(code, 5, "nabij {args:?}: {err}");
        assert!(err.contains("only an admin"), "{err}");
    }
    let args = ["--json", "network", "remove-device", &network, &admin_key, "--reason", "lost"];
    let (code, err) = member.fail(&args);
    assert_eq!(code, 5);
    let v: Value = serde_json::from_str(err.trim()).expect("JSON error");
    assert_eq!(v["error"], "not_allowed");
    assert_eq!(v["exit_code"], 5);
    assert_eq!(member.json(&["network", "show", &network]), theirs);

    // The admin removes Joost's lost phone, named by a key prefix; Joost stays a member.
    let after =
        admin.json(&["network", "remove-device", &network, &phone[..8], "--reason", "lost"]);
    let removed = after["removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{after}");
    assert_eq!(removed[0]["device"], phone.as_str());
    assert_eq!(s(&removed[0]["reason"]).to_lowercase(), "lost");
    assert_eq!(role_of(&after, "Joost"), "member");
    let joost = after["members"].as_array().expect("members").iter().find(|m| m["name"] == "Joost");
    assert_eq!(joost.expect("Joost stays")["devices"], serde_json::json!([]), "{after}");
    assert_eq!(admin.json(&["network", "show", &network]), after);
    let out = admin.run(&["network", "show", &network]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Removed devices (1)"), "{text}");
    assert!(text.contains(&format!("{}  lost", &phone[..8])), "{text}");

    // The admin's device, holding the removal, admits the phone only to hand it the removal:
    // the phone wipes the network and gets nothing.
    assert_eq!(member.json(&["network", "list"]).as_array().expect("networks").len(), 1);
    let (mut listener, ticket) = listen(&admin);
    let report = member.json(&["sync", &ticket]);
    assert_eq!(report["documents_received"], 0, "{report}");
    listener.0.take().expect("child").wait_with_output().expect("listener");
    assert_eq!(member.json(&["network", "list"]), serde_json::json!([]), "wiped");
}

#[test]
fn the_meeting_demo_converges_every_device() {
    let cli = Cli::new();
    let v = cli.json(&["demo", "meeting", "--devices", "4", "--cases", "2"]);
    assert_eq!(v["converged"], true, "{v}");
    let devices = v["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 4);
    assert!(devices.iter().all(|d| d["fingerprint"] == devices[0]["fingerprint"]));
    // Network, shared case, 2 cases per worker.
    assert_eq!(devices[0]["documents"], 2 + 4 * 2);
    let merged = s(&v["merged_note"]);
    assert!(merged.contains("de kledingbank") && merged.contains("vóór 1 december"), "{merged}");
    assert_eq!(v["shared_case_notes"], 1 + 4);
}

/// A child process killed if the test fails before waiting for it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_coordinator_encrypts_an_old_store_and_a_wrong_or_missing_key_is_refused() {
    let cli = Cli::new();
    let store = cli.store();
    // A store made before encryption at rest, without a key: it says so.
    let mut plain = cli.bare();
    plain.env_remove("NABIJ_STORE_KEY").args(["--store", &store, "--json"]);
    let out = plain.args(["case", "create", "--subject", "Familie Oudeweg"]).output().expect("run");
    let case = s(&parse_ok(&out, &["case", "create"])["id"]).to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("without encryption"));
    assert!(std::fs::read(&store).expect("read").windows(7).any(|w| w == b"Oudeweg"));

    // A key file, made by the CLI, owner-only.
    let key_file = cli.dir.path().join("store.key");
    let key_path = key_file.display().to_string();
    let made = parse_ok(
        &cli.bare().args(["--json", "key", "new", "--out", &key_path]).output().expect("run"),
        &["key"],
    );
    assert_eq!(s(&made["key_file"]), key_path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = cli.bare().args(["key", "new", "--out", &key_path]).output().expect("run");
    assert_eq!(failure(&again, &["key", "new"]).0, 2, "an existing key file is not overwritten");

    let with_file = |args: &[&str]| {
        let mut c = cli.bare();
        c.env_remove("NABIJ_STORE_KEY")
            .args(["--store", &store, "--key-file", &key_path])
            .args(args);
        c.output().expect("run")
    };
    let out = with_file(&["--json", "migrate-encrypt"]);
    assert_eq!(parse_ok(&out, &["migrate-encrypt"])["encrypted"], true);
    let shown = parse_ok(&with_file(&["--json", "case", "show", &case]), &["case", "show"]);
    assert_eq!(s(&shown["case"]["subject"]), "Familie Oudeweg");
    let bytes = std::fs::read(&store).expect("read");
    assert!(!bytes.windows(7).any(|w| w == b"Oudeweg"), "the store is encrypted");

    // No key: exit 4 (storage), saying a key is needed; a wrong key: the same, nothing changed.
    let mut none = cli.bare();
    none.env_remove("NABIJ_STORE_KEY").args(["--store", &store, "case", "list"]);
    let (code, err) = failure(&none.output().expect("run"), &["case", "list"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("encrypted") && err.contains("--key-file"), "{err}");
    let (code, err) = cli.fail(&["case", "list"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not its key"), "{err}");
    assert!(!err.contains(TEST_KEY), "the message must not show a key: {err}");
    assert!(std::fs::read(&store).expect("read") == bytes, "a refused open changed the store");

    // A key file others may read is refused; a malformed key says so without echoing it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let loose = cli.dir.path().join("loose.key");
        std::fs::write(&loose, format!("{TEST_KEY}\n")).expect("write");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut c = cli.bare();
        c.args(["--store", &store, "--key-file", &loose.display().to_string(), "case", "list"]);
        let (code, err) = failure(&c.output().expect("run"), &["--key-file"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }
    let mut bad = cli.bare();
    bad.env("NABIJ_STORE_KEY", "abc123").args(["--store", &store, "case", "list"]);
    let (code, err) = failure(&bad.output().expect("run"), &["NABIJ_STORE_KEY"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NABIJ_STORE_KEY") && !err.contains("abc123"), "{err}");

    // A new key: the old one no longer opens the store.
    let new_key = cli.dir.path().join("new.key");
    let new_path = new_key.display().to_string();
    assert!(
        cli.bare().args(["key", "new", "--out", &new_path]).output().expect("run").status.success()
    );
    let out = with_file(&["--json", "rekey", "--new-key-file", &new_path]);
    assert_eq!(parse_ok(&out, &["rekey"])["rekeyed"], true);
    assert_eq!(failure(&with_file(&["case", "list"]), &["old key"]).0, 4);
    let mut c = cli.bare();
    c.env_remove("NABIJ_STORE_KEY").env("NABIJ_STORE_KEY_FILE", &new_path);
    let listed = parse_ok(
        &c.args(["--store", &store, "--json", "case", "list"]).output().expect("run"),
        &["list"],
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

#[test]
fn a_coordinator_erases_a_case_and_it_is_gone_from_lists_search_and_show() {
    let cli = Cli::new();
    let case = cli.json(&["case", "create", "--subject", "Familie Oudeweg"]);
    let id = s(&case["id"]).to_string();
    cli.json(&["note", "add", &id, "--kind", "observation", "De deurwaarder kwam."]);
    let (code, err) = cli.fail(&["erase", &id]);
    assert_eq!(code, 2, "a reason is required: {err}");
    let erased = cli.json(&["erase", &id[..8], "--reason", "De cliënt vroeg erom"]);
    assert_eq!(s(&erased["erased"]), id);
    assert_eq!(s(&erased["kind"]), "case");
    assert_eq!(cli.json(&["case", "list"]).as_array().map(Vec::len), Some(0));
    assert_eq!(cli.json(&["search", "deurwaarder"]).as_array().map(Vec::len), Some(0));
    let (code, err) = cli.fail(&["case", "show", &id]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn a_worker_redacts_a_name_from_a_note_and_the_case_goes_on_under_a_new_id() {
    let cli = Cli::new();
    let case = cli.json(&["case", "create", "--subject", "Familie Oudeweg"]);
    let id = s(&case["id"]).to_string();
    let note = cli.json(&["note", "add", &id, "Buurman Vrijthoff hoorde ruzie."]);
    let note_id = s(&note["id"]).to_string();
    let (code, err) = cli.fail(&["note", "redact", &id, &note_id, "De buurman hoorde ruzie."]);
    assert_eq!(code, 2, "a reason is required: {err}");
    let redacted = cli.json(&[
        "note",
        "redact",
        &id[..8],
        &note_id[..8],
        "De buurman hoorde ruzie.",
        "--reason",
        "Naam van een buurman per ongeluk",
    ]);
    assert_eq!(s(&redacted["replaces"]), id);
    let new = s(&redacted["case"]).to_string();
    assert_ne!(new, id);
    let shown = cli.json(&["note", "show", &new, &note_id]);
    assert_eq!(s(&shown["text"]), "De buurman hoorde ruzie.");
    assert_eq!(cli.json(&["search", "Vrijthoff"]).as_array().map(Vec::len), Some(0));
    let (code, err) = cli.fail(&["case", "show", &id]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn withdrawing_consent_unshares_the_case_and_it_cannot_be_shared_until_given_again() {
    let cli = Cli::new();
    let net = cli.json(&["network", "create", "Wijknetwerk Oost"]);
    let net_id = s(&net["id"]).to_string();
    let case = cli.json(&["case", "create", "--subject", "Meneer D.", "--network", &net_id]);
    let id = s(&case["id"]).to_string();
    let withdrawn = cli.json(&["case", "update", &id, "--consent", "withdrawn"]);
    assert_eq!(withdrawn["consent"]["status"], "withdrawn");
    assert_eq!(withdrawn["networks"], serde_json::json!([]));
    let (code, err) = cli.fail(&["case", "update", &id, "--share-with", &net_id]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("consent"), "{err}");
    let again = cli.json(&["case", "update", &id, "--consent", "given", "--share-with", &net_id]);
    assert_eq!(again["networks"], serde_json::json!([net_id]));
    let narrowed = cli.json(&["case", "update", &id, "--unshare-from", &net_id]);
    assert_eq!(narrowed["networks"], serde_json::json!([]));
    assert_eq!(narrowed["consent"]["status"], "given");
}
