//! The command line, as clap derive types. Ids are taken as strings and resolved by
//! [`crate::resolve`], so a unique prefix (the 8 characters the human output shows) works too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nabij_core::model::{CaseStatus, ConsentStatus, LearningPointStatus, NoteKind};

const AFTER_HELP: &str = "\
Ids: every command takes a full id or a unique prefix of at least 4 characters (human output
shows the first 8). Texts given as `-` are read from standard input. Times are shown in UTC.

Exit codes: 0 ok, 1 other failure, 2 invalid input, 3 not found, 4 storage, 5 not allowed.

Start with `nabij demo` for a store with a neighbourhood-network day in it.";

/// Nabij: case notes, learning points and meetings for neighbourhood networks, on one device.
#[derive(Debug, Parser)]
#[command(name = "nabij", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The store file [default: $NABIJ_STORE, else ./nabij.db; for `demo`: ./nabij-demo.db]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) store: Option<PathBuf>,

    /// Print one JSON value (errors: one JSON line on stderr)
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// A file holding the store's key (64 hex digits, owner-only) [default:
    /// $NABIJ_STORE_KEY_FILE, else the key in $NABIJ_STORE_KEY; without a key the store is not
    /// encrypted]. Never the key itself on the command line: other users see it in `ps`.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// This device: its key, the member it writes as, the display name
    Whoami,
    /// Your profile on this device
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Neighbourhood networks (wijknetwerken) and their members
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Cases (casussen)
    #[command(subcommand)]
    Case(CaseCmd),
    /// Notes in a case's timeline
    #[command(subcommand)]
    Note(NoteCmd),
    /// Learning points (leerpunten)
    #[command(subcommand, name = "lp", visible_alias = "learning-point")]
    Lp(LpCmd),
    /// Network meetings (casusbespreking, intervisie)
    #[command(subcommand)]
    Meeting(MeetingCmd),
    /// Full-text search over cases, notes, learning points and meetings
    Search {
        /// Words to look for (all must match, accents folded; the last also as a prefix)
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// At most this many hits
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Who changed a case, learning point, meeting or network, when, and what
    History {
        /// The document id (or prefix)
        id: String,
    },
    /// Erase a case (with its notes), learning point or meeting, here and on every device
    /// that syncs afterwards (its worker or an admin of its network only)
    Erase {
        /// The document id (or prefix)
        id: String,
        /// Why (required): the client asked, the retention period ended, …
        #[arg(long)]
        reason: String,
    },
    /// Rebuild the lists and the search index from the stored documents
    Reindex,
    /// Check the store's integrity (exit code 4 if damage is found)
    Check,
    /// Seed a store with a day in "Wijknetwerk Oost" and show what a worker sees;
    /// `demo meeting`: phones meet over QUIC and converge
    Demo {
        #[command(subcommand)]
        which: Option<DemoCmd>,
    },
    /// This device's card: what a member scans to add it to a network
    Card,
    /// Hold a meeting: listen for colleagues' devices and show the ticket (and a QR code)
    Listen(ListenArgs),
    /// Sync with a listening device, by its ticket
    Sync {
        /// The ticket `nabij listen` showed (starts with nabij1)
        ticket: String,
    },
    /// Sync through a relay (`nabij-relay`): push what it lacks, pull what is new
    RelaySync(RelaySyncArgs),
    /// Store keys: make a new one
    #[command(subcommand)]
    Key(KeyCmd),
    /// Encrypt a store made without a key, in place, with the key given (--key-file,
    /// $NABIJ_STORE_KEY_FILE or $NABIJ_STORE_KEY); a crash leaves the old or the new store
    MigrateEncrypt,
    /// Re-encrypt the store under a new key (the old one from --key-file or the environment)
    Rekey {
        /// The file holding the new key (64 hex digits; `nabij key new` makes one)
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCmd {
    /// Write a new random store key to FILE (owner-only; an existing file is not overwritten)
    New {
        /// Where to write it
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RelaySyncArgs {
    /// The relay's address, HOST:PORT
    #[arg(long)]
    pub relay: String,
    /// The relay's key, as `nabij-relay` printed it (starts with nabijrelay1)
    #[arg(long)]
    pub key: String,
    /// Keep syncing: after local changes and every this many seconds, until Ctrl-C
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DemoCmd {
    /// Several phones write offline, then meet over QUIC on this machine and converge
    Meeting(MeetingArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Address and port to listen on
    #[arg(long, default_value = "0.0.0.0:0")]
    pub(crate) bind: std::net::SocketAddr,
    /// The network the meeting is for (id or prefix), written on the ticket
    #[arg(long)]
    pub(crate) network: Option<String>,
    /// Stop after this many sessions [default: until Ctrl-C]
    #[arg(long)]
    pub(crate) sessions: Option<usize>,
    /// Write the ticket to this file as well (for scripts)
    #[arg(long, value_name = "FILE")]
    pub(crate) ticket_file: Option<PathBuf>,
    /// Do not print the QR code
    #[arg(long)]
    pub(crate) no_qr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MeetingArgs {
    /// Workers at the meeting (the host included)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=32))]
    pub(crate) devices: u16,
    /// Cases each worker writes offline before the meeting
    #[arg(long, default_value_t = 3)]
    pub(crate) cases: u16,
    /// Keep the device stores in this folder [default: a temporary folder, removed after]
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCmd {
    /// Set the name you write as (shown as author on what this device writes next)
    SetName {
        /// e.g. "Fatima Amrani (wijkwerker)"
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCmd {
    /// Start a network, with you as its first member
    Create {
        /// e.g. "Wijknetwerk Oost"
        name: String,
    },
    /// Networks on this device
    List,
    /// A network and its members
    Show {
        /// Network id (or prefix)
        id: String,
    },
    /// Add a member's device (a new member, or a new phone of a member)
    AddMember {
        /// Network id (or prefix)
        network: String,
        /// Display name of the member [default: the name on the card]
        #[arg(long, required_unless_present = "card")]
        name: Option<String>,
        /// The device's key (as `nabij whoami` on that device shows it)
        #[arg(long, required_unless_present = "card", conflicts_with = "card")]
        device: Option<String>,
        /// The device's card (as `nabij card` on that device shows it): key, member and name
        #[arg(long)]
        card: Option<String>,
        /// The member's id, for a further device of a known member [default: a new member]
        #[arg(long)]
        member: Option<String>,
    },
    /// Add a member's device and print the invitation its user accepts with `network join`
    Invite {
        /// Network id (or prefix)
        network: String,
        /// The device's card (as `nabij card` on that device shows it): key, member and name
        #[arg(long)]
        card: String,
        /// The member's id, for a further device of a known member [default: the card's]
        #[arg(long)]
        member: Option<String>,
    },
    /// Accept an invitation: the network then arrives at the next meeting or relay sync
    Join {
        /// The invitation (`nabijinvite1…`), as `network invite` printed it
        invitation: String,
    },
    /// Give a member another role (admins add and remove members)
    Role {
        /// Network id (or prefix)
        network: String,
        /// The member's id (or prefix) or name
        member: String,
        /// The new role
        role: RoleArg,
    },
    /// Remove one device from a network (a lost or stolen phone); its member stays
    RemoveDevice {
        /// Network id (or prefix)
        network: String,
        /// The device's key (or prefix)
        device: String,
        /// Why
        #[arg(long)]
        reason: ReasonArg,
    },
    /// Remove a member, with all their devices, from a network
    RemoveMember {
        /// Network id (or prefix)
        network: String,
        /// The member's id (or prefix) or name
        member: String,
        /// Why
        #[arg(long)]
        reason: ReasonArg,
    },
}

/// A member's role in a network.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// Reads and writes what is shared with the network
    Member,
    /// Also adds and removes members and devices
    Admin,
}

/// Why a device or member is removed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ReasonArg {
    /// The phone was lost or stolen
    Lost,
    /// The worker left the network
    Left,
    /// The device or member is believed compromised
    Compromised,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaseCmd {
    /// Start a case
    Create(CaseCreate),
    /// Cases, newest activity first
    List {
        /// Only open or only closed cases
        #[arg(long)]
        status: Option<StatusArg>,
        /// Only cases with this tag
        #[arg(long)]
        tag: Option<String>,
        /// Only cases shared with this network (id or prefix)
        #[arg(long)]
        network: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A case: its fields, conflicts, agreements, CAIMeR, notes and learning points citing it
    Show {
        /// Case id (or prefix)
        id: String,
    },
    /// Change a case's fields
    Update(CaseUpdateArgs),
    /// Add an opgave, turning point, actor or agreement
    AddItem {
        /// Case id (or prefix)
        id: String,
        #[command(subcommand)]
        item: ItemCmd,
    },
    /// Mark an agreement of a case done (or open again with --undo)
    AgreementDone {
        /// Case id (or prefix)
        case: String,
        /// Agreement id (or prefix), as `case show` lists it
        item: String,
        /// Mark it open again
        #[arg(long)]
        undo: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CaseCreate {
    /// Pseudonymous label for the person or household (never required to be a real name)
    #[arg(long)]
    pub(crate) subject: String,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// What is at stake for the person
    #[arg(long, value_name = "TEXT")]
    pub(crate) at_stake: Option<String>,
    /// The person's own words, kept apart from your interpretation
    #[arg(long, value_name = "TEXT")]
    pub(crate) client_voice: Option<String>,
    /// Share with this network (id or prefix; repeatable)
    #[arg(long = "network", value_name = "ID")]
    pub(crate) networks: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CaseUpdateArgs {
    /// Case id (or prefix)
    pub(crate) id: String,
    /// New subject label
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// Open or close the case
    #[arg(long)]
    pub(crate) status: Option<StatusArg>,
    /// Add a tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub(crate) add_tag: Vec<String>,
    /// Remove a tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub(crate) remove_tag: Vec<String>,
    /// New text for what is at stake (`-`: standard input)
    #[arg(long, value_name = "TEXT")]
    pub(crate) at_stake: Option<String>,
    /// New text for the client's own voice (`-`: standard input)
    #[arg(long, value_name = "TEXT")]
    pub(crate) client_voice: Option<String>,
    /// A CAIMeR field: context, actors, interventions, mechanisms or results (repeatable)
    #[arg(long, value_name = "FIELD=TEXT")]
    pub(crate) caimer: Vec<String>,
    /// Record consent to share the case
    #[arg(long)]
    pub(crate) consent: Option<ConsentArg>,
    /// With whom / for what, e.g. "Wijknetwerk Oost, casusbespreking" [default: as it was]
    #[arg(long, value_name = "S", requires = "consent")]
    pub(crate) consent_scope: Option<String>,
    /// When consent was given or withdrawn, YYYY-MM-DD [default: today if the status changes]
    #[arg(long, value_name = "D", requires = "consent")]
    pub(crate) consent_date: Option<String>,
    /// Share with a network (id or prefix; repeatable)
    #[arg(long, value_name = "ID")]
    pub(crate) share_with: Vec<String>,
    /// Stop sharing with a network: its members' copies are deleted at their next sync
    /// (consent narrowed; `--consent withdrawn` unshares from every network) (repeatable)
    #[arg(long, value_name = "ID")]
    pub(crate) unshare_from: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ItemCmd {
    /// What the person struggles with now (which may differ from the question they came with)
    Opgave {
        /// The opgave
        text: String,
    },
    /// A turning point in the person's life story
    TurningPoint {
        /// What happened
        description: String,
        /// When, as you know it: a date, a year, "after the divorce"
        #[arg(long, default_value = "")]
        when: String,
    },
    /// Someone in the network around the person
    Actor {
        /// Name or role
        name: String,
        /// Relation to the person (mother, GP, housing association)
        #[arg(long, default_value = "")]
        relation: String,
    },
    /// An agreement (afspraak)
    Agreement {
        /// What was agreed
        text: String,
        /// Who acts on it
        #[arg(long, default_value = "")]
        owner: String,
        /// Due date, YYYY-MM-DD
        #[arg(long)]
        due: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NoteCmd {
    /// Add a note to a case's timeline
    Add {
        /// Case id (or prefix)
        case: String,
        /// What the note records
        #[arg(long, default_value = "observation")]
        kind: NoteKindArg,
        /// The text (`-`: read from standard input)
        text: String,
    },
    /// Replace a note's text (stored as the smallest edit, so concurrent edits survive)
    Edit {
        /// Case id (or prefix)
        case: String,
        /// Note id (or prefix)
        note: String,
        /// The new text (`-`: read from standard input)
        text: String,
    },
    /// Take words out of a note and out of the case's history (a name written by mistake):
    /// the case goes on under a new id, its old history erased on every device that syncs
    /// afterwards (its worker or an admin of its network only)
    Redact {
        /// Case id (or prefix)
        case: String,
        /// Note id (or prefix)
        note: String,
        /// The note as it should read, without the words (`-`: read from standard input)
        text: String,
        /// Why (required)
        #[arg(long)]
        reason: String,
    },
    /// One note
    Show {
        /// Case id (or prefix)
        case: String,
        /// Note id (or prefix)
        note: String,
    },
    /// A case's notes, oldest first
    List {
        /// Case id (or prefix)
        case: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LpCmd {
    /// Propose a learning point
    Create {
        /// Title
        #[arg(long)]
        title: String,
        /// The insight (`-`: standard input)
        #[arg(long, value_name = "TEXT")]
        insight: Option<String>,
        /// A case it came from (id or prefix; repeatable)
        #[arg(long = "case", value_name = "ID")]
        cases: Vec<String>,
        /// Literature or a guideline (repeatable)
        #[arg(long = "source", value_name = "S")]
        sources: Vec<String>,
        /// A tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Share with this network (id or prefix; repeatable)
        #[arg(long = "network", value_name = "ID")]
        networks: Vec<String>,
    },
    /// Learning points, newest first
    List {
        /// Only with this status
        #[arg(long)]
        status: Option<LpStatusArg>,
        /// Only with this tag
        #[arg(long)]
        tag: Option<String>,
    },
    /// A learning point with its cases, sources and perspectives
    Show {
        /// Learning point id (or prefix)
        id: String,
    },
    /// Change a learning point
    Update(LpUpdateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LpUpdateArgs {
    /// Learning point id (or prefix)
    pub(crate) id: String,
    /// New title
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// New insight text (`-`: standard input)
    #[arg(long, value_name = "TEXT")]
    pub(crate) insight: Option<String>,
    /// New status
    #[arg(long)]
    pub(crate) status: Option<LpStatusArg>,
    /// The meeting where it was discussed (id or prefix)
    #[arg(long, value_name = "ID")]
    pub(crate) meeting: Option<String>,
    /// Link a case (id or prefix; repeatable)
    #[arg(long, value_name = "ID")]
    pub(crate) add_case: Vec<String>,
    /// Add a source (repeatable)
    #[arg(long, value_name = "S")]
    pub(crate) add_source: Vec<String>,
    /// Add a tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub(crate) add_tag: Vec<String>,
    /// A perspective: client-voice|professional|dissent, who holds it, the view (repeatable)
    #[arg(long, value_name = "KIND:WHO:TEXT")]
    pub(crate) perspective: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MeetingCmd {
    /// Plan a meeting
    Create {
        /// Date, YYYY-MM-DD
        #[arg(long)]
        date: String,
        /// Place
        #[arg(long, default_value = "")]
        place: String,
        /// A participant, name or role (repeatable)
        #[arg(long = "participant", value_name = "NAME")]
        participants: Vec<String>,
        /// A case for the agenda (id or prefix; repeatable, in agenda order)
        #[arg(long = "agenda", value_name = "CASE")]
        agenda: Vec<String>,
        /// The network that meets (id or prefix)
        #[arg(long, value_name = "ID")]
        network: Option<String>,
    },
    /// Meetings, newest date first
    List,
    /// A meeting: agenda, minutes, agreements, learning points captured
    Show {
        /// Meeting id (or prefix)
        id: String,
    },
    /// Change a meeting
    Update(MeetingUpdateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MeetingUpdateArgs {
    /// Meeting id (or prefix)
    pub(crate) id: String,
    /// New place
    #[arg(long)]
    pub(crate) place: Option<String>,
    /// New minutes (`-`: standard input); replaces the text by its smallest edit
    #[arg(long, value_name = "TEXT", conflicts_with = "append_minutes")]
    pub(crate) minutes: Option<String>,
    /// Add a paragraph to the minutes (`-`: standard input)
    #[arg(long, value_name = "TEXT")]
    pub(crate) append_minutes: Option<String>,
    /// Add a participant (repeatable)
    #[arg(long, value_name = "NAME")]
    pub(crate) add_participant: Vec<String>,
    /// Add a case to the agenda (id or prefix; repeatable)
    #[arg(long, value_name = "CASE")]
    pub(crate) add_agenda: Vec<String>,
    /// A learning point captured (id or prefix; repeatable)
    #[arg(long, value_name = "ID")]
    pub(crate) add_lp: Vec<String>,
    /// An agreement made (repeatable)
    #[arg(long, value_name = "TEXT:OWNER[:DUE]")]
    pub(crate) agreement: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Open,
    Closed,
}

impl From<StatusArg> for CaseStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Open => CaseStatus::Open,
            StatusArg::Closed => CaseStatus::Closed,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum NoteKindArg {
    /// An observation or a contact with the person
    Observation,
    /// A reflection (in or on action)
    Reflection,
    /// An agreement made
    Agreement,
    /// A question to put to the network
    Question,
}

impl From<NoteKindArg> for NoteKind {
    fn from(k: NoteKindArg) -> Self {
        match k {
            NoteKindArg::Observation => NoteKind::Observation,
            NoteKindArg::Reflection => NoteKind::Reflection,
            NoteKindArg::Agreement => NoteKind::Agreement,
            NoteKindArg::Question => NoteKind::Question,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LpStatusArg {
    Proposed,
    Discussed,
    Adopted,
    #[value(alias = "set_aside")]
    SetAside,
}

impl From<LpStatusArg> for LearningPointStatus {
    fn from(s: LpStatusArg) -> Self {
        match s {
            LpStatusArg::Proposed => LearningPointStatus::Proposed,
            LpStatusArg::Discussed => LearningPointStatus::Discussed,
            LpStatusArg::Adopted => LearningPointStatus::Adopted,
            LpStatusArg::SetAside => LearningPointStatus::SetAside,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ConsentArg {
    Given,
    Withdrawn,
    Unknown,
}

impl From<ConsentArg> for ConsentStatus {
    fn from(c: ConsentArg) -> Self {
        match c {
            ConsentArg::Given => ConsentStatus::Given,
            ConsentArg::Withdrawn => ConsentStatus::Withdrawn,
            ConsentArg::Unknown => ConsentStatus::Unknown,
        }
    }
}
