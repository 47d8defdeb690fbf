//! Runs one command against one device: resolves ids, calls the core, prints the result as
//! text for people or as one JSON value for scripts.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use nabij_core::{
    Device, DeviceOptions, DocId, MemberId, StoreKey,
    error::OpenError,
    model::CaseFilter,
    model::{
        CAIMER_FIELDS, CaseItem, CaseUpdate, Consent, ConsentStatus, DocKind, LearningPointUpdate,
        MeetingUpdate, NewCase, NewLearningPoint, NewMeeting, NewNote, PerspectiveKind,
    },
    model::{Reason, Role},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    args::{
        CaseCmd, CaseCreate, CaseUpdateArgs, Command, ItemCmd, LpCmd, LpUpdateArgs, MeetingCmd,
        MeetingUpdateArgs, NetworkCmd, NoteCmd, ProfileCmd, ReasonArg, RoleArg,
    },
    error::{CliError, Result},
    resolve,
    text::{self, short},
    view::{self, Detail, Names},
};

fn reason_of(r: ReasonArg) -> Reason {
    match r {
        ReasonArg::Lost => Reason::Lost,
        ReasonArg::Left => Reason::Left,
        ReasonArg::Compromised => Reason::Compromised,
    }
}

/// Writes to stdout; a closed pipe (`nabij case list | head`) is not an error.
pub(crate) fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("cannot write output: {e}"))),
    }
}

/// Opens the store. Commands that only read refuse a store that does not exist yet, instead
/// of silently creating an empty one at a mistyped path.
pub(crate) fn open(path: &Path, may_create: bool, key: Option<StoreKey>) -> Result<Device> {
    let exists = path.exists();
    if !may_create && !exists {
        return Err(CliError::storage(format!(
            "no store at {} (it is created by the first write; see `nabij --help`)",
            path.display()
        )));
    }
    let encrypted = key.is_some();
    let device = Device::open_with(path, DeviceOptions { key, ..DeviceOptions::default() })
        .map_err(|e| {
            let hint = match &e {
                nabij_core::Error::Open(OpenError::WrongKey(_)) if !encrypted => {
                    " (give its key: --key-file FILE, $NABIJ_STORE_KEY_FILE or $NABIJ_STORE_KEY)"
                }
                _ => "",
            };
            let e = CliError::from(e).context(format!("store {}", path.display()));
            CliError { message: format!("{}{hint}", e.message), ..e }
        })?;
    if !exists && !encrypted {
        // Not an error (tests and throwaway stores), but never silent.
        let _ = writeln!(
            std::io::stderr(),
            "nabij: created {} without encryption; give a key (--key-file, \
             $NABIJ_STORE_KEY_FILE or $NABIJ_STORE_KEY) to encrypt a store",
            path.display()
        );
    }
    Ok(device)
}

/// Whether a command writes (and so may create the store).
pub(crate) fn may_create(cmd: &Command) -> bool {
    match cmd {
        Command::Whoami
        | Command::Profile(_)
        | Command::Demo { .. }
        | Command::Card
        | Command::Listen(_)
        | Command::Sync { .. }
        | Command::RelaySync(_) => true,
        Command::Network(c) => !matches!(c, NetworkCmd::List | NetworkCmd::Show { .. }),
        Command::Case(c) => !matches!(c, CaseCmd::List { .. } | CaseCmd::Show { .. }),
        Command::Note(c) => {
            matches!(c, NoteCmd::Add { .. } | NoteCmd::Edit { .. } | NoteCmd::Redact { .. })
        }
        Command::Lp(c) => matches!(c, LpCmd::Create { .. } | LpCmd::Update(_)),
        Command::Meeting(c) => matches!(c, MeetingCmd::Create { .. } | MeetingCmd::Update(_)),
        Command::Search { .. }
        | Command::History { .. }
        | Command::Erase { .. }
        | Command::Reindex
        | Command::Check
        | Command::Key(_)
        | Command::MigrateEncrypt
        | Command::Rekey { .. } => false,
    }
}

/// A text argument: `-` reads standard input (one trailing newline dropped).
pub(crate) fn text_arg(s: String) -> Result<String> {
    if s != "-" {
        return Ok(s);
    }
    let mut buf = String::new();
    std::io::stdin()
        .read_to_string(&mut buf)
        .map_err(|e| CliError::invalid(format!("cannot read standard input: {e}")))?;
    let trimmed = buf.trim_end_matches(['\n', '\r']).len();
    buf.truncate(trimmed);
    Ok(buf)
}

fn opt_text(s: Option<String>) -> Result<Option<String>> {
    s.map(text_arg).transpose()
}

/// `TEXT:OWNER[:DUE]`: the text may itself hold colons; a last part that looks like a date is
/// the due date.
pub(crate) fn parse_agreement(s: &str) -> Result<(String, String, Option<String>)> {
    let mut parts: Vec<&str> = s.split(':').collect();
    let looks_like_date = |p: &str| {
        let p = p.trim();
        p.len() == 10 && p.chars().all(|c| c.is_ascii_digit() || c == '-')
    };
    let due = match parts.last() {
        Some(p) if parts.len() >= 3 && looks_like_date(p) => {
            Some(nabij_core::model::date("due date", p)?)
        }
        _ => None,
    };
    if due.is_some() {
        parts.pop();
    }
    let Some(owner) = parts.pop().filter(|_| !parts.is_empty()) else {
        return Err(CliError::invalid(format!(
            "agreement `{s}`: expected TEXT:OWNER or TEXT:OWNER:YYYY-MM-DD"
        )));
    };
    Ok((parts.join(":").trim().to_string(), owner.trim().to_string(), due))
}

/// `KIND:WHO:TEXT`, kind one of client-voice, professional, dissent.
pub(crate) fn parse_perspective(s: &str) -> Result<(PerspectiveKind, String, String)> {
    let mut parts = s.splitn(3, ':');
    let (Some(kind), Some(who), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CliError::invalid(format!(
            "perspective `{}`: expected KIND:WHO:TEXT (kind: client-voice, professional, dissent)",
            text::truncate(s, 40)
        )));
    };
    let kind = PerspectiveKind::parse(&kind.trim().to_lowercase().replace('-', "_"))?;
    Ok((kind, who.trim().to_string(), text.trim().to_string()))
}

/// `FIELD=TEXT` for a CAIMeR field.
fn parse_caimer(s: &str) -> Result<(String, String)> {
    let Some((field, text)) = s.split_once('=') else {
        return Err(CliError::invalid(format!(
            "CAIMeR `{}`: expected FIELD=TEXT with FIELD one of {}",
            text::truncate(s, 40),
            CAIMER_FIELDS.join(", ")
        )));
    };
    Ok((field.trim().to_lowercase(), text.to_string()))
}

/// The running command: a device, and how to print.
pub(crate) struct App {
    pub(crate) dev: Device,
    pub(crate) json: bool,
    pub(crate) store: PathBuf,
    pub(crate) width: usize,
}

impl App {
    /// Prints `value` as JSON, or what `human` renders.
    fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            let s = serde_json::to_string_pretty(value)
                .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
            print(&format!("{s}\n"))
        } else {
            print(&human())
        }
    }

    /// Names of networks, cases and meetings on this device.
    pub(crate) fn names(&self) -> Result<Names> {
        let mut names = Names::default();
        for n in self.dev.list_networks()? {
            names.networks.insert(n.id, n.name);
        }
        for c in self.dev.list_cases(&CaseFilter { limit: Some(u32::MAX), ..Default::default() })? {
            names.cases.insert(c.id, c.subject);
        }
        for m in self.dev.list_meetings()? {
            let label = if m.place.is_empty() { m.date } else { format!("{} {}", m.date, m.place) };
            names.meetings.insert(m.id, label);
        }
        Ok(names)
    }

    pub(crate) fn run(&self, cmd: Command) -> Result<()> {
        match cmd {
            Command::Whoami => self.whoami(),
            Command::Profile(ProfileCmd::SetName { name }) => {
                self.dev.set_display_name(&name)?;
                self.whoami()
            }
            Command::Network(c) => self.network(c),
            Command::Case(c) => self.case(c),
            Command::Note(c) => self.note(c),
            Command::Lp(c) => self.lp(c),
            Command::Meeting(c) => self.meeting(c),
            Command::Search { query, limit } => self.search(&query.join(" "), limit),
            Command::History { id } => self.history(&id),
            Command::Erase { id, reason } => self.erase(&id, &reason),
            Command::Reindex => {
                let n = self.dev.reindex()?;
                self.emit(&json!({ "documents": n }), || {
                    format!(
                        "Rebuilt lists and search index from {}.\n",
                        text::plural(n, "document", "documents")
                    )
                })
            }
            Command::Check => self.check(),
            Command::Demo { .. } => Err(CliError::failure("the demos run on their own stores")),
            Command::Card | Command::Listen(_) | Command::Sync { .. } | Command::RelaySync(_) => {
                Err(CliError::failure("meeting commands run outside the app"))
            }
            Command::Key(_) | Command::MigrateEncrypt | Command::Rekey { .. } => {
                Err(CliError::failure("key commands run outside the app"))
            }
        }
    }

    fn whoami(&self) -> Result<()> {
        let v = json!({
            "device_key": self.dev.device_key(),
            "member_id": self.dev.member_id(),
            "display_name": self.dev.display_name(),
            "store": self.store.display().to_string(),
        });
        self.emit(&v, || {
            let mut s = format!(
                "{}\n  member  {}\n  device  {}\n  store   {}\n",
                self.dev.display_name(),
                self.dev.member_id(),
                self.dev.device_key(),
                self.store.display()
            );
            if self.dev.display_name().starts_with("device ") {
                s.push_str("Set your name: `nabij profile set-name \"Name (role)\"`\n");
            }
            s
        })
    }

    fn check(&self) -> Result<()> {
        let problems = self.dev.check_integrity()?;
        let n = self.dev.document_ids()?.len();
        self.emit(
            &json!({ "ok": problems.is_empty(), "documents": n, "problems": problems }),
            || {
                if problems.is_empty() {
                    format!(
                        "Store {} is sound ({} checked).\n",
                        self.store.display(),
                        text::plural(n, "document", "documents")
                    )
                } else {
                    let mut s = format!("Store {} has problems:\n", self.store.display());
                    for p in &problems {
                        s.push_str(&format!("  - {p}\n"));
                    }
                    s
                }
            },
        )?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CliError::storage(format!(
                "integrity check found {}",
                text::plural(problems.len(), "problem", "problems")
            )))
        }
    }

    // -----------------------------------------------------------------------------------------
    // Networks

    fn network(&self, cmd: NetworkCmd) -> Result<()> {
        match cmd {
            NetworkCmd::Create { name } => {
                let id = self.dev.create_network(&name)?;
                self.show_network(id, "Started network ")
            }
            NetworkCmd::List => {
                let ns = self.dev.list_networks()?;
                self.emit(&ns, || view::network_list(&ns))
            }
            NetworkCmd::Show { id } => {
                let id = resolve::network(&self.dev, &id)?;
                self.show_network(id, "")
            }
            NetworkCmd::AddMember { network, name, device, card, member } => {
                let id = resolve::network(&self.dev, &network)?;
                let card = card
                    .map(|c| {
                        nabij_core::net::DeviceCard::parse(&c)
                            .map_err(|e| CliError::invalid(format!("--card: {e}")))
                    })
                    .transpose()?;
                let device = match (&card, device) {
                    (Some(c), _) => c.device,
                    (None, Some(d)) => d.parse().map_err(CliError::from)?,
                    (None, None) => return Err(CliError::invalid("give --device or --card")),
                };
                let member = match (member, &card) {
                    (Some(m), _) => m.parse::<MemberId>().map_err(CliError::from)?,
                    (None, Some(c)) => c.member,
                    (None, None) => MemberId::random(),
                };
                let name = match (name, &card) {
                    (Some(n), _) => n,
                    (None, Some(c)) => c.name.clone(),
                    (None, None) => return Err(CliError::invalid("give --name")),
                };
                self.dev.add_member(id, member, &name, device)?;
                self.show_network(id, "")
            }
            NetworkCmd::Invite { network, card, member } => {
                let id = resolve::network(&self.dev, &network)?;
                let card = nabij_core::net::DeviceCard::parse(&card)
                    .map_err(|e| CliError::invalid(format!("--card: {e}")))?;
                let member = match member {
                    Some(m) => resolve::member(&self.dev, id, &m)?,
                    None => card.member,
                };
                let invitation = self.dev.invite(id, member, &card.name, card.device)?;
                let text = invitation.encode();
                let v = json!({ "invitation": text, "network": id.to_string() });
                self.emit(&v, || {
                    format!(
                        "Invited {} to {}. On their device:\n  nabij network join {text}\n",
                        card.name, invitation.network_name
                    )
                })
            }
            NetworkCmd::Join { invitation } => {
                let inv = nabij_core::invitation::Invitation::parse(&invitation)
                    .map_err(|e| CliError::invalid(e.to_string()))?;
                self.dev.join(&inv)?;
                let v = json!({
                    "network": inv.network.to_string(),
                    "name": inv.network_name,
                    "inviter": inv.inviter_name,
                });
                self.emit(&v, || {
                    format!(
                        "Accepted: {} (invited by {}). It arrives at your next meeting or relay sync.\n",
                        inv.network_name, inv.inviter_name
                    )
                })
            }
            NetworkCmd::Role { network, member, role } => {
                let id = resolve::network(&self.dev, &network)?;
                let member = resolve::member(&self.dev, id, &member)?;
                let role = match role {
                    RoleArg::Member => Role::Member,
                    RoleArg::Admin => Role::Admin,
                };
                self.dev.set_role(id, member, role)?;
                self.show_network(id, "")
            }
            NetworkCmd::RemoveDevice { network, device, reason } => {
                let id = resolve::network(&self.dev, &network)?;
                let device = resolve::device(&self.dev, id, &device)?;
                self.dev.remove_device(id, device, reason_of(reason))?;
                self.show_network(id, "")
            }
            NetworkCmd::RemoveMember { network, member, reason } => {
                let id = resolve::network(&self.dev, &network)?;
                let member = resolve::member(&self.dev, id, &member)?;
                self.dev.remove_member(id, member, reason_of(reason))?;
                self.show_network(id, "")
            }
        }
    }

    fn show_network(&self, id: DocId, prefix: &str) -> Result<()> {
        let n = self.dev.network(id)?;
        self.emit(&n, || format!("{prefix}{}", view::network_full(&n, &self.dev.device_key())))
    }

    // -----------------------------------------------------------------------------------------
    // Cases

    fn case(&self, cmd: CaseCmd) -> Result<()> {
        match cmd {
            CaseCmd::Create(a) => self.case_create(a),
            CaseCmd::List { status, tag, network, limit } => {
                let filter = CaseFilter {
                    status: status.map(Into::into),
                    tag,
                    network: network.map(|n| resolve::network(&self.dev, &n)).transpose()?,
                    limit: Some(limit),
                    offset: 0,
                };
                let cases = self.dev.list_cases(&filter)?;
                self.emit(&cases, || view::case_list(&cases, self.width))
            }
            CaseCmd::Show { id } => {
                let id = resolve::case(&self.dev, &id)?;
                self.show_case(id, Detail::Full)
            }
            CaseCmd::Update(a) => self.case_update(a),
            CaseCmd::AddItem { id, item } => {
                let id = resolve::case(&self.dev, &id)?;
                let (what, item) = match item {
                    ItemCmd::Opgave { text } => ("opgave", CaseItem::Opgave { text }),
                    ItemCmd::TurningPoint { description, when } => {
                        ("turning point", CaseItem::TurningPoint { when, description })
                    }
                    ItemCmd::Actor { name, relation } => {
                        ("person around them", CaseItem::Actor { name, relation })
                    }
                    ItemCmd::Agreement { text, owner, due } => {
                        ("agreement", CaseItem::Agreement { text, owner, due })
                    }
                };
                let item_id = self.dev.add_case_item(id, item)?;
                let case = self.dev.case(id)?;
                self.emit(&json!({ "item_id": item_id, "case": case }), || {
                    format!(
                        "Added {what} {} to case {}  {}\n",
                        short(item_id),
                        short(id),
                        case.subject
                    )
                })
            }
            CaseCmd::AgreementDone { case, item, undo } => {
                let id = resolve::case(&self.dev, &case)?;
                let item = resolve::agreement(&self.dev, id, &item)?;
                self.dev.set_case_agreement_done(id, item, !undo)?;
                let case = self.dev.case(id)?;
                self.emit(&case, || {
                    let a = case.agreements.iter().find(|a| a.id == item);
                    format!(
                        "Marked {} {}: {}\n",
                        if undo { "open" } else { "done" },
                        short(item),
                        a.map(|a| a.text.as_str()).unwrap_or("")
                    )
                })
            }
        }
    }

    fn case_create(&self, a: CaseCreate) -> Result<()> {
        let input = NewCase {
            subject: a.subject,
            tags: a.tags,
            at_stake: opt_text(a.at_stake)?.unwrap_or_default(),
            client_voice: opt_text(a.client_voice)?.unwrap_or_default(),
            networks: resolve::docs(&self.dev, &a.networks, DocKind::Network)?,
        };
        let id = self.dev.create_case(input)?;
        let case = self.dev.case(id)?;
        self.emit(&case, || {
            format!(
                "Created case {}  {}\n  id {}\nNext: `nabij note add {} --kind observation \"…\"`\n",
                short(id),
                case.subject,
                id,
                short(id)
            )
        })
    }

    fn case_update(&self, a: CaseUpdateArgs) -> Result<()> {
        let id = resolve::case(&self.dev, &a.id)?;
        // Consent is written whole: what is not given stays as it was, and a change of
        // status without a date is dated today.
        let consent = match a.consent {
            None => None,
            Some(status) => {
                let status: ConsentStatus = status.into();
                let old = self.dev.case(id)?.consent;
                let date = match a.consent_date {
                    Some(d) => Some(d),
                    None if status == old.status => old.date,
                    None if status == ConsentStatus::Unknown => None,
                    None => Some(text::today()),
                };
                Some(Consent { status, scope: a.consent_scope.unwrap_or(old.scope), date })
            }
        };
        let u = CaseUpdate {
            subject: a.subject,
            status: a.status.map(Into::into),
            add_tags: a.add_tag,
            remove_tags: a.remove_tag,
            at_stake: opt_text(a.at_stake)?,
            client_voice: opt_text(a.client_voice)?,
            caimer: a.caimer.iter().map(|c| parse_caimer(c)).collect::<Result<_>>()?,
            consent,
            share_with: resolve::docs(&self.dev, &a.share_with, DocKind::Network)?,
            unshare_from: resolve::docs(&self.dev, &a.unshare_from, DocKind::Network)?,
        };
        let nothing = u.subject.is_none()
            && u.status.is_none()
            && u.add_tags.is_empty()
            && u.remove_tags.is_empty()
            && u.at_stake.is_none()
            && u.client_voice.is_none()
            && u.caimer.is_empty()
            && u.consent.is_none()
            && u.share_with.is_empty()
            && u.unshare_from.is_empty();
        if nothing {
            return Err(CliError::invalid(
                "nothing to change: give at least one option (see `nabij case update --help`)",
            ));
        }
        self.dev.update_case(id, u)?;
        let case = self.dev.case(id)?;
        self.emit(&case, || format!("Updated case {}  {}\n", short(id), case.subject))
    }

    pub(crate) fn show_case(&self, id: DocId, detail: Detail) -> Result<()> {
        let case = self.dev.case(id)?;
        let notes = self.dev.case_timeline(id)?;
        let citing = self.dev.learning_points_citing(id)?;
        let names = self.names()?;
        self.emit(&json!({ "case": case, "notes": notes, "learning_points": citing }), || {
            view::case_full(&case, &notes, &citing, &names, detail, self.width)
        })
    }

    // -----------------------------------------------------------------------------------------
    // Notes

    fn note(&self, cmd: NoteCmd) -> Result<()> {
        match cmd {
            NoteCmd::Add { case, kind, text } => {
                let case = resolve::case(&self.dev, &case)?;
                let text = text_arg(text)?;
                let id = self.dev.add_note(case, NewNote { kind: kind.into(), text })?;
                let note = self.dev.note(case, id)?;
                self.emit(&note, || {
                    format!(
                        "Added {} note {} to case {}\n",
                        note.kind.as_str(),
                        short(id),
                        short(case)
                    )
                })
            }
            NoteCmd::Edit { case, note, text } => {
                let case = resolve::case(&self.dev, &case)?;
                let id = resolve::note(&self.dev, case, &note)?;
                let text = text_arg(text)?;
                self.dev.edit_note(case, id, &text)?;
                let note = self.dev.note(case, id)?;
                self.emit(&note, || format!("Edited note {} in case {}\n", short(id), short(case)))
            }
            NoteCmd::Redact { case, note, text, reason } => {
                let case = resolve::case(&self.dev, &case)?;
                let id = resolve::note(&self.dev, case, &note)?;
                let text = text_arg(text)?;
                let new = self.dev.redact_note(case, id, &text, &reason)?;
                self.emit(&json!({ "case": new, "replaces": case, "note": id }), || {
                    format!(
                        "Redacted note {} of case {}: the case goes on as {} without the words \
                         in its history. Every device that syncs with this one deletes the old \
                         history too.\n",
                        short(id),
                        short(case),
                        short(new)
                    )
                })
            }
            NoteCmd::Show { case, note } => {
                let case = resolve::case(&self.dev, &case)?;
                let id = resolve::note(&self.dev, case, &note)?;
                let note = self.dev.note(case, id)?;
                let subject = self.dev.case(case)?.subject;
                self.emit(&note, || view::note_full(&note, &subject, self.width))
            }
            NoteCmd::List { case } => {
                let case = resolve::case(&self.dev, &case)?;
                let notes = self.dev.case_timeline(case)?;
                self.emit(&notes, || {
                    if notes.is_empty() {
                        return "No notes in this case yet.\n".into();
                    }
                    notes.iter().map(|n| view::note_entry(n, self.width, None)).collect()
                })
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Learning points

    fn lp(&self, cmd: LpCmd) -> Result<()> {
        match cmd {
            LpCmd::Create { title, insight, cases, sources, tags, networks } => {
                let input = NewLearningPoint {
                    title,
                    insight: opt_text(insight)?.unwrap_or_default(),
                    cases: resolve::docs(&self.dev, &cases, DocKind::Case)?,
                    sources,
                    tags,
                    networks: resolve::docs(&self.dev, &networks, DocKind::Network)?,
                };
                let id = self.dev.create_learning_point(input)?;
                let lp = self.dev.learning_point(id)?;
                self.emit(&lp, || {
                    format!("Proposed learning point {}  {}\n  id {}\n", short(id), lp.title, id)
                })
            }
            LpCmd::List { status, tag } => {
                let lps = self.dev.list_learning_points(status.map(Into::into), tag.as_deref())?;
                self.emit(&lps, || view::lp_list(&lps))
            }
            LpCmd::Show { id } => {
                let id = resolve::learning_point(&self.dev, &id)?;
                let lp = self.dev.learning_point(id)?;
                let names = self.names()?;
                self.emit(&lp, || view::lp_full(&lp, &names, Detail::Full, self.width))
            }
            LpCmd::Update(a) => self.lp_update(a),
        }
    }

    fn lp_update(&self, a: LpUpdateArgs) -> Result<()> {
        let id = resolve::learning_point(&self.dev, &a.id)?;
        let u = LearningPointUpdate {
            title: a.title,
            insight: opt_text(a.insight)?,
            status: a.status.map(Into::into),
            meeting: a.meeting.map(|m| resolve::meeting(&self.dev, &m)).transpose()?,
            add_cases: resolve::docs(&self.dev, &a.add_case, DocKind::Case)?,
            add_sources: a.add_source,
            add_perspectives: a
                .perspective
                .iter()
                .map(|p| parse_perspective(p))
                .collect::<Result<_>>()?,
            add_tags: a.add_tag,
        };
        let nothing = u.title.is_none()
            && u.insight.is_none()
            && u.status.is_none()
            && u.meeting.is_none()
            && u.add_cases.is_empty()
            && u.add_sources.is_empty()
            && u.add_perspectives.is_empty()
            && u.add_tags.is_empty();
        if nothing {
            return Err(CliError::invalid(
                "nothing to change: give at least one option (see `nabij lp update --help`)",
            ));
        }
        self.dev.update_learning_point(id, u)?;
        let lp = self.dev.learning_point(id)?;
        self.emit(&lp, || format!("Updated learning point {}  {}\n", short(id), lp.title))
    }

    // -----------------------------------------------------------------------------------------
    // Meetings

    fn meeting(&self, cmd: MeetingCmd) -> Result<()> {
        match cmd {
            MeetingCmd::Create { date, place, participants, agenda, network } => {
                let input = NewMeeting {
                    network: network.map(|n| resolve::network(&self.dev, &n)).transpose()?,
                    date,
                    place,
                    participants,
                    agenda: resolve::docs(&self.dev, &agenda, DocKind::Case)?,
                };
                let id = self.dev.create_meeting(input)?;
                let m = self.dev.meeting(id)?;
                self.emit(&m, || {
                    format!("Planned meeting {}  {} {}\n  id {}\n", short(id), m.date, m.place, id)
                })
            }
            MeetingCmd::List => {
                let ms = self.dev.list_meetings()?;
                let names = self.names()?;
                self.emit(&ms, || view::meeting_list(&ms, &names))
            }
            MeetingCmd::Show { id } => {
                let id = resolve::meeting(&self.dev, &id)?;
                self.show_meeting(id)
            }
            MeetingCmd::Update(a) => self.meeting_update(a),
        }
    }

    pub(crate) fn show_meeting(&self, id: DocId) -> Result<()> {
        let m = self.dev.meeting(id)?;
        let contents = self.dev.meeting_contents(id)?;
        let names = self.names()?;
        self.emit(
            &json!({
                "meeting": m,
                "agenda": contents.agenda,
                "learning_points": contents.learning_points,
            }),
            || view::meeting_full(&m, &contents, &names, self.width),
        )
    }

    fn meeting_update(&self, a: MeetingUpdateArgs) -> Result<()> {
        let id = resolve::meeting(&self.dev, &a.id)?;
        let minutes = match (opt_text(a.minutes)?, opt_text(a.append_minutes)?) {
            (Some(m), _) => Some(m),
            (None, Some(more)) => {
                let old = self.dev.meeting(id)?.minutes;
                Some(if old.trim().is_empty() {
                    more
                } else {
                    format!("{}\n\n{more}", old.trim_end())
                })
            }
            (None, None) => None,
        };
        let u = MeetingUpdate {
            place: a.place,
            minutes,
            add_participants: a.add_participant,
            add_agenda: resolve::docs(&self.dev, &a.add_agenda, DocKind::Case)?,
            add_learning_points: resolve::docs(&self.dev, &a.add_lp, DocKind::LearningPoint)?,
            add_agreements: a
                .agreement
                .iter()
                .map(|s| parse_agreement(s))
                .collect::<Result<_>>()?,
        };
        let nothing = u.place.is_none()
            && u.minutes.is_none()
            && u.add_participants.is_empty()
            && u.add_agenda.is_empty()
            && u.add_learning_points.is_empty()
            && u.add_agreements.is_empty();
        if nothing {
            return Err(CliError::invalid(
                "nothing to change: give at least one option (see `nabij meeting update --help`)",
            ));
        }
        self.dev.update_meeting(id, u)?;
        let m = self.dev.meeting(id)?;
        self.emit(&m, || format!("Updated meeting {}  {} {}\n", short(id), m.date, m.place))
    }

    // -----------------------------------------------------------------------------------------
    // Search and history

    pub(crate) fn search(&self, query: &str, limit: u32) -> Result<()> {
        let hits = self.dev.search(query, limit)?;
        self.emit(&hits, || view::search_hits(query, &hits, 2, self.width))
    }

    fn erase(&self, id: &str, reason: &str) -> Result<()> {
        let id = resolve::doc(&self.dev, id, None)?;
        let kind = self.dev.kind_of(id)?;
        let what = match kind {
            DocKind::Case => "case",
            DocKind::LearningPoint => "learning point",
            DocKind::Meeting => "meeting",
            DocKind::Network => "network",
        };
        self.dev.erase(id, reason)?;
        self.emit(&json!({ "erased": id, "kind": what }), || {
            format!(
                "Erased {what} {}. Every device that syncs with this one (or through a relay \
                 after this one) deletes it too.\n",
                short(id)
            )
        })
    }

    fn history(&self, id: &str) -> Result<()> {
        let id = resolve::doc(&self.dev, id, None)?;
        let kind = self.dev.kind_of(id)?;
        let entries = self.dev.history(id)?;
        let what = match kind {
            DocKind::Case => format!("case {}  {}", short(id), self.dev.case(id)?.subject),
            DocKind::LearningPoint => {
                format!("learning point {}  {}", short(id), self.dev.learning_point(id)?.title)
            }
            DocKind::Meeting => {
                let m = self.dev.meeting(id)?;
                format!("meeting {}  {} {}", short(id), m.date, m.place)
            }
            DocKind::Network => format!("network {}  {}", short(id), self.dev.network(id)?.name),
        };
        self.emit(&entries, || view::history(&what, &entries, self.width))
    }
}
