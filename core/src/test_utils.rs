//! Helpers shared by the benchmarks (`core/benches`, `tests/benches`) and the cross-crate
//! scenarios (`tests/`): figures (milliseconds, medians), a seeded random source and note text
//! that reads like a worker's, the tokio runtime and loopback listener the QUIC benchmarks use,
//! and a few readers of `/proc` and the file system.
//!
//! Compiled only with the `test-utils` feature, which the benchmarks and `nabij-tests` enable
//! and nothing shipped does. One copy, so that every benchmark and scenario computes its
//! figures and writes its text the same way.
//!
//! Behaviour is fixed: the figures in BENCHMARKS.md were measured with exactly these helpers
//! (the same texts, the same random sequence, the same median), so a change here makes new
//! figures incomparable with old ones. Add a helper rather than change one.
//!
//! Helpers panic with a message on failure (a test or benchmark that cannot set itself up
//! should stop there); none of this is for apps.

use std::{
    fmt::Display,
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    Device, DocId,
    model::{NewCase, NewNote, NoteKind},
};

/// Keys a raw SQLite connection exactly as the store keys its own (the key, the cipher
/// settings, temporary files in memory): for benchmark floors and tests that read a store's
/// rows directly.
pub fn key_connection(conn: &rusqlite::Connection, key: &crate::StoreKey) {
    crate::store::apply_key(conn, Some(key)).expect("key the connection");
}

/// Whether to run the benchmark `name`: every one when the command line names none, else
/// those whose name contains a word given (`cargo bench --bench sync -- catch`). Flags are not
/// names (cargo passes `--bench` to every benchmark binary).
pub fn selected(name: &str) -> bool {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    names.is_empty() || names.iter().any(|n| name.contains(n.as_str()))
}

/// `name` from the environment as a number, or `default` if unset or not a number (how the
/// benchmarks take their sizes, e.g. `NABIJ_BENCH_REPS`).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The median: the middle value, or the mean of the two middle values for an even count
/// (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// A duration in milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Words from the workers' domain, which [`Rng::sentence`] mixes into its text so that a search
/// for one of them finds some notes.
pub const WORDS: &[&str] = &[
    "wasmachine",
    "school",
    "huisarts",
    "schuld",
    "buurthuis",
    "moeder",
    "dochter",
    "kleren",
    "gesprek",
    "afspraak",
    "woningcorporatie",
    "jongerenwerker",
    "buurtpastor",
    "eenzaam",
    "presentie",
    "nabijheid",
    "vertrouwen",
    "netwerk",
    "zorgen",
    "budget",
    "huur",
    "werk",
    "vrijwilliger",
    "koffie",
    "keukentafel",
    "wijkagent",
    "leerplicht",
    "ervaringskennis",
    "wens",
    "angst",
    "relatie",
    "schuring",
    "logica",
    "redelijk",
    "oplossing",
    "begeleider",
];

/// SplitMix64: a tiny seeded random source, so a failing seed replays exactly and a
/// benchmark writes the same text every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Text with a realistic vocabulary: one word in eight from [`WORDS`], the rest from 5,000
    /// made-up words drawn Zipf-like (a few very common, most rare), so a search word matches
    /// some notes, not half of them.
    pub fn sentence(&mut self, words: usize) -> String {
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "me", "ri", "su", "te", "van", "der", "berg", "hout", "wi", "jn", "sch",
            "oe", "ver", "ge", "lijk", "heid", "ing", "stra", "pel", "dam", "kus", "ter",
        ];
        let mut s = Vec::with_capacity(words);
        for _ in 0..words {
            if self.next_u64().is_multiple_of(8) {
                s.push(WORDS[(self.next_u64() % WORDS.len() as u64) as usize].to_string());
            } else {
                let mut idx = 5_000f64.powf(self.unit()) as usize;
                let mut w = String::new();
                loop {
                    w.push_str(SYLLABLES[idx % SYLLABLES.len()]);
                    idx /= SYLLABLES.len();
                    if idx == 0 {
                        break;
                    }
                }
                s.push(w);
            }
        }
        let mut out = s.join(" ");
        out.push('.');
        out
    }
}

/// Sentences from a worker's case notes. The meeting benchmarks cycle through them.
pub const SENTENCES: [&str; 6] = [
    "Huisbezoek: koffie aan de keukentafel, de post lag ongeopend op tafel.",
    "Samen gebeld met de woningcorporatie over de huurachterstand van drie maanden.",
    "Wil zelf niet naar de huisarts; de buurvrouw haalt de herhaalrecepten.",
    "Dochter is weer naar school; de mentor belde om te vertellen dat het beter gaat.",
    "Afspraak gemaakt om volgende week samen naar het wijkcentrum te gaan.",
    "Jongerenwerker zag hem bij het buurthuis; hij hielp met opruimen na de kookclub.",
];

/// The four sentences the relay benchmarks cycle through: two of [`SENTENCES`] and two of
/// their own, as they were measured (other text would change the blobs' sizes).
pub const RELAY_SENTENCES: [&str; 4] = [
    SENTENCES[0],
    SENTENCES[1],
    "Dochter gaat weer naar school; de mentor belt volgende week terug.",
    "Afspraak gemaakt bij de schuldhulp, moeder wil dat de buurvrouw meegaat.",
];

/// A case on `device` shared with `network`, otherwise empty.
pub fn shared_case(device: &Device, network: DocId, subject: &str) -> DocId {
    device
        .create_case(NewCase {
            subject: subject.into(),
            networks: vec![network],
            ..NewCase::default()
        })
        .expect("case")
}

/// An observation note.
pub fn observation(text: &str) -> NewNote {
    NewNote { kind: NoteKind::Observation, text: text.into() }
}

/// An observation: sentence `n` of `sentences` (cycling), followed by `(tag)` so that no two
/// notes are the same text.
pub fn sentence_note(sentences: &[&str], n: usize, tag: impl Display) -> NewNote {
    let sentence = sentences.get(n % sentences.len().max(1)).copied().unwrap_or_default();
    observation(&format!("{sentence} ({tag})"))
}

/// Whether `needle` occurs in `haystack` (an empty needle always does).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The sizes of the files directly in `dir`, summed (0 if it cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

/// Peak and current resident set of process `pid`, in KiB (`VmHWM`, `VmRSS`; 0 where
/// `/proc` does not say).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Waits for another process to write `path`, polling every `poll`, and returns what it holds;
/// panics after `timeout`. The writer should write a temporary name and rename it, so that the
/// file is whole once it exists.
pub fn wait_for_file(path: &Path, timeout: Duration, poll: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(start.elapsed() < timeout, "{} did not appear in {timeout:?}", path.display());
        std::thread::sleep(poll);
    }
}

/// The runtime the QUIC benchmarks drive devices with: multi-threaded, two workers (as every
/// figure in BENCHMARKS.md was measured).
#[cfg(feature = "quic")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Listen options on a free port of the IPv4 loopback.
#[cfg(feature = "quic")]
pub fn loopback() -> crate::net::ListenOptions {
    crate::net::ListenOptions {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..crate::net::ListenOptions::default()
    }
}

/// A device's signing key, for attacker tests that sign as a member gone bad (a real
/// attacker holds its own device's key).
pub fn signing_key(device: &Device) -> ed25519_dalek::SigningKey {
    device.signing_key_for_tests().clone()
}

/// The key epochs of a network whose keys `device` holds, oldest first (none for a network it
/// does not hold).
pub fn key_epochs(device: &Device, network: crate::DocId) -> Vec<u32> {
    device.network_keys(network).map(|(_, k)| k.into_keys().collect()).unwrap_or_default()
}

/// The network key of `epoch` that `device` holds (a member's, as its modified app has it).
pub fn network_key(device: &Device, network: DocId, epoch: u32) -> crate::crypto::SecretKey {
    let (_, keys) = device.network_keys(network).expect("the network's keys");
    keys.get(&epoch).cloned().expect("a key of that epoch")
}

/// The id `doc` has at relays in `network` (a keyed hash under the network's first key).
pub fn relay_doc_id(device: &Device, network: DocId, doc: DocId) -> [u8; 32] {
    crate::crypto::relay_doc_id(&network_key(device, network, 0), doc)
}

/// How many content keys of `doc` in `network` `device` keeps.
pub fn content_keys_kept(device: &Device, network: DocId, doc: DocId) -> usize {
    let relay_network = device.relay_network_id(network).expect("network").expect("genesis");
    let relay_doc = relay_doc_id(device, network, doc);
    device.kept_content_keys(&relay_network, &relay_doc).expect("content keys").len()
}

/// A blob of `doc` as a device from before content keys left the network document pushed
/// it: under a new content key sealed into the network document's `content_keys` map (made if
/// the network lacks it), carrying no key. Its relay id and bytes.
pub fn legacy_content_key_blob(device: &Device, network: DocId, doc: DocId) -> ([u8; 32], Vec<u8>) {
    let rng = crate::ids::Randomness::os();
    let epoch = *key_epochs(device, network).last().expect("an epoch");
    let network_key = network_key(device, network, epoch);
    let relay_network = device.relay_network_id(network).expect("network").expect("genesis");
    let relay_doc = relay_doc_id(device, network, doc);
    let ctx = crate::crypto::BlobContext { network: relay_network, doc: relay_doc, epoch };
    let key = crate::crypto::SecretKey::generate(&rng).expect("key");
    let sealed = crate::crypto::seal_content_key(&rng, &network_key, &key, &ctx).expect("seal");
    let entry = format!("{}.{}", hex::encode(relay_doc), hex::encode(key.id()));
    device.plant_entry_for_tests(network, "content_keys", &entry, sealed, true).expect("plant");
    let exported = device.export_document(doc).expect("export");
    let (signed, bytes) = crate::authorship::open_envelope(&exported).expect("envelope");
    let heads: Vec<[u8; 32]> = device.heads(doc).expect("heads").iter().map(|h| h.0).collect();
    let plain = crate::relay::encode_payload(doc, &heads, &signed, bytes);
    (relay_doc, crate::crypto::encrypt_blob(&rng, &key, &ctx, &plain).expect("blob").bytes)
}

/// Every content-key entry the network document held at any point of its history, as
/// `device` holds it (Automerge keeps every value: an entry once there is there for good).
pub fn content_keys_in_history(device: &Device, network: DocId) -> usize {
    use automerge::ReadDoc;
    let mut doc = load_exported(&device.export_document(network).expect("export"));
    let mut entries = std::collections::BTreeSet::new();
    for change in doc.get_changes(&[]) {
        let at = [change.hash()];
        if let Ok(Some((automerge::Value::Object(_), map))) =
            doc.get_at(automerge::ROOT, "content_keys", &at)
        {
            entries.extend(doc.keys_at(&map, &at));
        }
    }
    entries.len()
}

/// The Automerge document inside what [`Device::export_document`] gives (it comes in an
/// envelope with its signatures), for tests that play with the document itself.
pub fn load_exported(exported: &[u8]) -> automerge::AutoCommit {
    let (_, bytes) = crate::authorship::open_envelope(exported).expect("an exported document");
    automerge::AutoCommit::load(bytes).expect("an Automerge document")
}

/// A member gone bad signs its own latest change in `fork` (whose actor is its device key),
/// as its modified app would: the signed head to send with the change.
pub fn sign_fork(
    device: &Device,
    doc: DocId,
    fork: &mut automerge::AutoCommit,
) -> Vec<crate::authorship::SignedHead> {
    let key = device.signing_key_for_tests();
    fork.get_last_local_change()
        .map(|c| crate::authorship::SignedHead::sign(key, doc, c.seq(), c.hash().0))
        .into_iter()
        .collect()
}

/// A member gone bad writes an entry into a network document's tombstone map as its modified
/// app would, past every check `Device::erase` makes: `key` and `bytes` as it likes. What the
/// other devices make of it is the test's question.
pub fn plant_tombstone_entry(
    device: &Device,
    network: DocId,
    key: &str,
    bytes: Vec<u8>,
) -> Result<(), crate::Error> {
    device.plant_entry_for_tests(network, "tombstones", key, bytes, false)
}

/// A tombstone for `doc` in `network`, signed by `device` (valid or not: the receivers judge).
pub fn signed_tombstone(device: &Device, network: DocId, doc: DocId) -> (String, Vec<u8>) {
    let tag = crate::erasure::erased_tag(doc);
    let t = crate::erasure::Tombstone {
        tag,
        network,
        by: device.device_key(),
        at: 0,
        reason: "ik mag dit niet".into(),
        scope: crate::erasure::Scope::Erased,
    };
    (format!("{}.{}", hex::encode(tag), device.device_key()), t.sign(device.identity_for_tests()))
}

/// A tombstone that unshares `doc` from `network` at `heads` (any bytes), signed by `device`,
/// and the key it belongs under.
pub fn signed_unshare_tombstone(
    device: &Device,
    network: DocId,
    doc: DocId,
    heads: Vec<[u8; 32]>,
) -> (String, Vec<u8>) {
    let tag = crate::erasure::erased_tag(doc);
    let t = crate::erasure::Tombstone {
        tag,
        network,
        by: device.device_key(),
        at: 0,
        reason: "ik mag dit niet".into(),
        scope: crate::erasure::Scope::Unshared { heads, kept: Vec::new() },
    };
    (
        format!("{}.{}.{}", hex::encode(tag), device.device_key(), "00".repeat(8)),
        t.sign(device.identity_for_tests()),
    )
}
