//! The domain types as foreign code sees them, and their conversions to and from the core's.
//!
//! Ids are base58check strings; times are milliseconds since the Unix epoch (`i64`). Output
//! types convert with `From` (infallible); input types with `TryFrom`, because their id
//! strings must parse (a bad id is [`NabijError::InvalidInput`]). No validation happens here:
//! the core validates every input.

use nabij_core::{DocId, model as m};

use crate::error::{NabijError, parse_ids, parse_opt_id};

fn strings<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn convert<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(B::from).collect()
}

/// Mirrors a fieldless core enum, with `From` both ways (exhaustive: a new core variant is a
/// compile error here, not a silent fallback).
macro_rules! mirror_enum {
    (
        $(#[$meta:meta])*
        $name:ident = $core:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                use $core as C;
                match v { $(C::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                use $core as C;
                match v { $($name::$variant => C::$variant),+ }
            }
        }
    };
}

mirror_enum!(
    /// What a document holds.
    DocKind = m::DocKind {
        /// A case and its notes.
        Case,
        /// A learning point.
        LearningPoint,
        /// A network meeting.
        Meeting,
        /// A neighbourhood network.
        Network,
    }
);
mirror_enum!(
    /// What a member may do in a network.
    Role = m::Role {
        /// Reads and writes what is shared with the network.
        Member,
        /// Also adds and removes members and devices, and changes roles.
        Admin,
    }
);
mirror_enum!(
    /// Why a device or member was removed from a network.
    RemovalReason = m::Reason {
        /// The phone was lost or stolen.
        Lost,
        /// The worker left the network.
        Left,
        /// The device or member is believed compromised.
        Compromised,
    }
);
mirror_enum!(
    /// Whether a case is being worked on.
    CaseStatus = m::CaseStatus {
        /// Being worked on.
        Open,
        /// Closed.
        Closed,
    }
);
mirror_enum!(
    /// What a note records.
    NoteKind = m::NoteKind {
        /// An observation or a contact with the person.
        Observation,
        /// A reflection (in or on action).
        Reflection,
        /// An agreement made.
        Agreement,
        /// A question to put to the network.
        Question,
    }
);
mirror_enum!(
    /// Where a learning point stands.
    LearningPointStatus = m::LearningPointStatus {
        /// Proposed, not yet discussed.
        Proposed,
        /// Discussed in a meeting.
        Discussed,
        /// Adopted into practice.
        Adopted,
        /// Set aside.
        SetAside,
    }
);
mirror_enum!(
    /// Whose view a perspective on a learning point gives.
    PerspectiveKind = m::PerspectiveKind {
        /// The client's own voice.
        ClientVoice,
        /// A professional's view.
        Professional,
        /// A dissenting view.
        Dissent,
    }
);
mirror_enum!(
    /// Whether the person agreed to their case being shared.
    ConsentStatus = m::ConsentStatus {
        /// Not (yet) asked or recorded.
        Unknown,
        /// Given, for the scope recorded.
        Given,
        /// Withdrawn.
        Withdrawn,
    }
);
mirror_enum!(
    /// What a search hit is.
    HitKind = m::HitKind {
        /// A case's own fields.
        Case,
        /// A note.
        Note,
        /// A learning point.
        LearningPoint,
        /// A meeting.
        Meeting,
    }
);

// ---------------------------------------------------------------------------------------------
// Output records

/// Who wrote something: a member, on one of their devices.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Author {
    /// The member id.
    pub member: String,
    /// The member's display name when they wrote it.
    pub name: String,
    /// The device key it was written on.
    pub device: String,
}

impl From<m::Author> for Author {
    fn from(a: m::Author) -> Self {
        Self { member: a.member.to_string(), name: a.name, device: a.device.to_string() }
    }
}

/// Several values written concurrently to one field.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Conflict {
    /// The field, as a path (`subject`, `consent.status`).
    pub field: String,
    /// Every concurrent value; the first is the one shown as current.
    pub values: Vec<String>,
}

impl From<m::Conflict> for Conflict {
    fn from(c: m::Conflict) -> Self {
        Self { field: c.field, values: c.values }
    }
}

/// An agreement (afspraak).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Agreement {
    /// Its item id.
    pub id: String,
    /// What was agreed.
    pub text: String,
    /// Who acts on it.
    pub owner: String,
    /// Due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    /// Whether it is done.
    pub done: bool,
}

impl From<m::Agreement> for Agreement {
    fn from(a: m::Agreement) -> Self {
        Self { id: a.id.to_string(), text: a.text, owner: a.owner, due: a.due, done: a.done }
    }
}

/// A short text item: an opgave, or a source of a learning point.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TextItem {
    /// Its item id.
    pub id: String,
    /// The text.
    pub text: String,
}

impl From<m::TextItem> for TextItem {
    fn from(t: m::TextItem) -> Self {
        Self { id: t.id.to_string(), text: t.text }
    }
}

/// A turning point (keerpunt) in the person's life story.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TurningPoint {
    /// Its item id.
    pub id: String,
    /// When, as the worker knows it.
    pub when: String,
    /// What happened.
    pub description: String,
}

impl From<m::TurningPoint> for TurningPoint {
    fn from(t: m::TurningPoint) -> Self {
        Self { id: t.id.to_string(), when: t.when, description: t.description }
    }
}

/// Someone in the network around the person.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaseActor {
    /// Its item id.
    pub id: String,
    /// Name or role label.
    pub name: String,
    /// Relation to the person.
    pub relation: String,
}

impl From<m::CaseActor> for CaseActor {
    fn from(a: m::CaseActor) -> Self {
        Self { id: a.id.to_string(), name: a.name, relation: a.relation }
    }
}

/// The CAIMeR analysis of a case.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Caimer {
    /// Context.
    pub context: String,
    /// Actors.
    pub actors: String,
    /// Interventions.
    pub interventions: String,
    /// Mechanisms.
    pub mechanisms: String,
    /// Results.
    pub results: String,
}

impl From<m::Caimer> for Caimer {
    fn from(c: m::Caimer) -> Self {
        Self {
            context: c.context,
            actors: c.actors,
            interventions: c.interventions,
            mechanisms: c.mechanisms,
            results: c.results,
        }
    }
}

/// Whether and with whom the person agreed their case may be shared. Also the input of
/// `CaseUpdate.consent`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Consent {
    /// Given, withdrawn or unknown.
    pub status: ConsentStatus,
    /// With whom / for what.
    #[uniffi(default)]
    pub scope: String,
    /// When it was given or withdrawn, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub date: Option<String>,
}

impl From<m::Consent> for Consent {
    fn from(c: m::Consent) -> Self {
        Self { status: c.status.into(), scope: c.scope, date: c.date }
    }
}

impl From<Consent> for m::Consent {
    fn from(c: Consent) -> Self {
        Self { status: c.status.into(), scope: c.scope, date: c.date }
    }
}

/// A case (casus), without its notes (see `Device.case_timeline`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Case {
    /// The case document id.
    pub id: String,
    /// Pseudonymous label for the person or household.
    pub subject: String,
    /// Open or closed.
    pub status: CaseStatus,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// What is at stake for the person.
    pub at_stake: String,
    /// What the person is struggling with now.
    pub opgaven: Vec<TextItem>,
    /// Turning points in their life story.
    pub turning_points: Vec<TurningPoint>,
    /// The person's own words.
    pub client_voice: String,
    /// The network around the person.
    pub actors: Vec<CaseActor>,
    /// CAIMeR analysis.
    pub caimer: Caimer,
    /// Agreements and actions.
    pub agreements: Vec<Agreement>,
    /// Consent to share.
    pub consent: Consent,
    /// Network ids the case is shared with.
    pub networks: Vec<String>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// Who created it.
    pub created_by: Author,
    /// Last activity on the case or its notes (ms since the epoch).
    pub updated_at: i64,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

impl From<m::Case> for Case {
    fn from(c: m::Case) -> Self {
        Self {
            id: c.id.to_string(),
            subject: c.subject,
            status: c.status.into(),
            tags: c.tags,
            at_stake: c.at_stake,
            opgaven: convert(c.opgaven),
            turning_points: convert(c.turning_points),
            client_voice: c.client_voice,
            actors: convert(c.actors),
            caimer: c.caimer.into(),
            agreements: convert(c.agreements),
            consent: c.consent.into(),
            networks: strings(&c.networks),
            created_at: c.created_at,
            created_by: c.created_by.into(),
            updated_at: c.updated_at,
            conflicts: convert(c.conflicts),
        }
    }
}

/// A note (casusnotitie) in a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Note {
    /// The note id.
    pub id: String,
    /// The case it belongs to.
    pub case_id: String,
    /// Who wrote it.
    pub author: Author,
    /// When it was written (ms since the epoch).
    pub created_at: i64,
    /// Last edit of its text (ms since the epoch).
    pub edited_at: i64,
    /// What it records.
    pub kind: NoteKind,
    /// Its text.
    pub text: String,
}

impl From<m::Note> for Note {
    fn from(n: m::Note) -> Self {
        Self {
            id: n.id.to_string(),
            case_id: n.case_id.to_string(),
            author: n.author.into(),
            created_at: n.created_at,
            edited_at: n.edited_at,
            kind: n.kind.into(),
            text: n.text,
        }
    }
}

/// A perspective considered in a learning point.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Perspective {
    /// Its item id.
    pub id: String,
    /// Whose view.
    pub kind: PerspectiveKind,
    /// Who holds it (a role).
    pub who: String,
    /// The view.
    pub text: String,
}

impl From<m::Perspective> for Perspective {
    fn from(p: m::Perspective) -> Self {
        Self { id: p.id.to_string(), kind: p.kind.into(), who: p.who, text: p.text }
    }
}

/// A learning point (leerpunt).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LearningPoint {
    /// The learning point document id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The insight.
    pub insight: String,
    /// Case ids it came from.
    pub cases: Vec<String>,
    /// Those of `cases` that were erased: show the link as "erased".
    pub erased_cases: Vec<String>,
    /// Literature, guidelines.
    pub sources: Vec<TextItem>,
    /// Perspectives considered.
    pub perspectives: Vec<Perspective>,
    /// Where it stands.
    pub status: LearningPointStatus,
    /// The meeting where it was discussed.
    pub meeting: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Network ids it is shared with.
    pub networks: Vec<String>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// Who created it.
    pub created_by: Author,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

impl From<m::LearningPoint> for LearningPoint {
    fn from(l: m::LearningPoint) -> Self {
        Self {
            id: l.id.to_string(),
            title: l.title,
            insight: l.insight,
            cases: strings(&l.cases),
            erased_cases: strings(&l.erased_cases),
            sources: convert(l.sources),
            perspectives: convert(l.perspectives),
            status: l.status.into(),
            meeting: l.meeting.map(|d| d.to_string()),
            tags: l.tags,
            networks: strings(&l.networks),
            created_at: l.created_at,
            created_by: l.created_by.into(),
            updated_at: l.updated_at,
            conflicts: convert(l.conflicts),
        }
    }
}

/// A network meeting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Meeting {
    /// The meeting document id.
    pub id: String,
    /// The network that meets.
    pub network: Option<String>,
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// Place.
    pub place: String,
    /// Who took part.
    pub participants: Vec<String>,
    /// Case ids on the agenda, in agenda order.
    pub agenda: Vec<String>,
    /// Minutes.
    pub minutes: String,
    /// Learning point ids captured.
    pub learning_points: Vec<String>,
    /// Actions agreed.
    pub agreements: Vec<Agreement>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// Who created it.
    pub created_by: Author,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// Fields with concurrent values.
    pub conflicts: Vec<Conflict>,
}

impl From<m::Meeting> for Meeting {
    fn from(x: m::Meeting) -> Self {
        Self {
            id: x.id.to_string(),
            network: x.network.map(|d| d.to_string()),
            date: x.date,
            place: x.place,
            participants: x.participants,
            agenda: strings(&x.agenda),
            minutes: x.minutes,
            learning_points: strings(&x.learning_points),
            agreements: convert(x.agreements),
            created_at: x.created_at,
            created_by: x.created_by.into(),
            updated_at: x.updated_at,
            conflicts: convert(x.conflicts),
        }
    }
}

/// A member of a network and their devices.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Member {
    /// The member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What they may do in the network.
    pub role: Role,
    /// Their devices' keys.
    pub devices: Vec<String>,
}

impl From<m::Member> for Member {
    fn from(x: m::Member) -> Self {
        Self {
            id: x.id.to_string(),
            name: x.name,
            role: x.role.into(),
            devices: strings(&x.devices),
        }
    }
}

/// What an invitation asks, to show before accepting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct InvitationInfo {
    /// The network's id.
    pub network: String,
    /// Its name.
    pub network_name: String,
    /// Who invites (their name in the network).
    pub inviter_name: String,
    /// The inviting device's key.
    pub inviter: String,
    /// The role offered.
    pub role: Role,
    /// When it was made (ms since the epoch, as the inviting device's clock had it).
    pub issued_at: i64,
}

impl From<nabij_core::invitation::Invitation> for InvitationInfo {
    fn from(i: nabij_core::invitation::Invitation) -> Self {
        Self {
            network: i.network.to_string(),
            network_name: i.network_name,
            inviter_name: i.inviter_name,
            inviter: i.inviter.to_string(),
            role: i.role.into(),
            issued_at: i.issued_at,
        }
    }
}

/// A device removed from a network.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RemovedDevice {
    /// The device's key.
    pub device: String,
    /// Why.
    pub reason: RemovalReason,
}

impl From<m::RemovedDevice> for RemovedDevice {
    fn from(x: m::RemovedDevice) -> Self {
        Self { device: x.device.to_string(), reason: x.reason.into() }
    }
}

/// A neighbourhood network (wijknetwerk).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Network {
    /// The network document id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Members, in the order they joined.
    pub members: Vec<Member>,
    /// Devices removed from the network.
    pub removed: Vec<RemovedDevice>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
}

impl From<m::Network> for Network {
    fn from(n: m::Network) -> Self {
        Self {
            id: n.id.to_string(),
            name: n.name,
            members: convert(n.members),
            removed: convert(n.removed),
            created_at: n.created_at,
        }
    }
}

/// A case in a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaseSummary {
    /// The case id.
    pub id: String,
    /// Subject label.
    pub subject: String,
    /// Status.
    pub status: CaseStatus,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Newest activity on the case or its notes (ms since the epoch).
    pub last_activity: i64,
    /// Number of notes.
    pub note_count: u32,
    /// Whether a field holds concurrent values.
    pub has_conflicts: bool,
}

impl From<m::CaseSummary> for CaseSummary {
    fn from(c: m::CaseSummary) -> Self {
        Self {
            id: c.id.to_string(),
            subject: c.subject,
            status: c.status.into(),
            tags: c.tags,
            last_activity: c.last_activity,
            note_count: c.note_count,
            has_conflicts: c.has_conflicts,
        }
    }
}

/// A learning point in a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LearningPointSummary {
    /// The learning point id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: LearningPointStatus,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// Number of cases it cites.
    pub case_count: u32,
}

impl From<m::LearningPointSummary> for LearningPointSummary {
    fn from(l: m::LearningPointSummary) -> Self {
        Self {
            id: l.id.to_string(),
            title: l.title,
            status: l.status.into(),
            updated_at: l.updated_at,
            case_count: l.case_count,
        }
    }
}

/// A meeting in a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MeetingSummary {
    /// The meeting id.
    pub id: String,
    /// Network id.
    pub network: Option<String>,
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// Place.
    pub place: String,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

impl From<m::MeetingSummary> for MeetingSummary {
    fn from(x: m::MeetingSummary) -> Self {
        Self {
            id: x.id.to_string(),
            network: x.network.map(|d| d.to_string()),
            date: x.date,
            place: x.place,
            updated_at: x.updated_at,
        }
    }
}

/// Everything discussed in a meeting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MeetingContents {
    /// The meeting.
    pub meeting: MeetingSummary,
    /// Cases on the agenda, in order (those this device holds).
    pub agenda: Vec<CaseSummary>,
    /// Learning points captured, in order (those this device holds).
    pub learning_points: Vec<LearningPointSummary>,
}

impl From<m::MeetingContents> for MeetingContents {
    fn from(x: m::MeetingContents) -> Self {
        Self {
            meeting: x.meeting.into(),
            agenda: convert(x.agenda),
            learning_points: convert(x.learning_points),
        }
    }
}

/// A network in a list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NetworkSummary {
    /// The network id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Number of members.
    pub member_count: u32,
}

impl From<m::NetworkSummary> for NetworkSummary {
    fn from(n: m::NetworkSummary) -> Self {
        Self { id: n.id.to_string(), name: n.name, member_count: n.member_count }
    }
}

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SearchHit {
    /// What matched.
    pub kind: HitKind,
    /// The document id.
    pub doc_id: String,
    /// The note id, for note hits.
    pub note_id: Option<String>,
    /// The case subject, learning point title, or meeting date and place.
    pub title: String,
    /// The matching passage, matches in `[` `]`.
    pub snippet: String,
    /// Relevance (higher is better).
    pub score: f64,
}

impl From<m::SearchHit> for SearchHit {
    fn from(h: m::SearchHit) -> Self {
        Self {
            kind: h.kind.into(),
            doc_id: h.doc_id.to_string(),
            note_id: h.note_id.map(|n| n.to_string()),
            title: h.title,
            snippet: h.snippet,
            score: h.score,
        }
    }
}

/// One entry of a document's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// The change hash (hex).
    pub hash: String,
    /// The device key that wrote it.
    pub device: Option<String>,
    /// The member name that device is known by, if known here.
    pub author: Option<String>,
    /// When (ms since the epoch, the writer's clock).
    pub time: i64,
    /// What changed.
    pub summary: String,
}

impl From<nabij_core::device::HistoryEntry> for HistoryEntry {
    fn from(h: nabij_core::device::HistoryEntry) -> Self {
        Self {
            hash: h.hash,
            device: h.device.map(|d| d.to_string()),
            author: h.author,
            time: h.time,
            summary: h.summary,
        }
    }
}

/// What merging foreign data did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MergeOutcome {
    /// The document id.
    pub doc_id: String,
    /// Its kind.
    pub kind: DocKind,
    /// Whether anything new arrived.
    pub changed: bool,
}

impl From<nabij_core::device::MergeOutcome> for MergeOutcome {
    fn from(o: nabij_core::device::MergeOutcome) -> Self {
        Self { doc_id: o.doc_id.to_string(), kind: o.kind.into(), changed: o.changed }
    }
}

/// A document on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DocumentInfo {
    /// The document id.
    pub id: String,
    /// Its kind.
    pub kind: DocKind,
}

impl From<(DocId, m::DocKind)> for DocumentInfo {
    fn from((id, kind): (DocId, m::DocKind)) -> Self {
        Self { id: id.to_string(), kind: kind.into() }
    }
}

// ---------------------------------------------------------------------------------------------
// Input records

/// Input for a new case.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewCase {
    /// Pseudonymous label (required).
    pub subject: String,
    /// Tags.
    #[uniffi(default)]
    pub tags: Vec<String>,
    /// What is at stake.
    #[uniffi(default)]
    pub at_stake: String,
    /// The person's own words.
    #[uniffi(default)]
    pub client_voice: String,
    /// Network ids to share it with.
    #[uniffi(default)]
    pub networks: Vec<String>,
}

impl TryFrom<NewCase> for m::NewCase {
    type Error = NabijError;
    fn try_from(c: NewCase) -> Result<Self, NabijError> {
        Ok(Self {
            networks: parse_ids(&c.networks)?,
            subject: c.subject,
            tags: c.tags,
            at_stake: c.at_stake,
            client_voice: c.client_voice,
        })
    }
}

/// A new CAIMeR text for one field of a case.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaimerText {
    /// The field: one of `caimer_fields()` (context, actors, interventions, mechanisms,
    /// results).
    pub field: String,
    /// Its new text.
    pub text: String,
}

/// A change to a case's fields; `null`/`None` and empty lists leave a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct CaseUpdate {
    /// New subject label.
    #[uniffi(default)]
    pub subject: Option<String>,
    /// New status.
    #[uniffi(default)]
    pub status: Option<CaseStatus>,
    /// Tags to add.
    #[uniffi(default)]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[uniffi(default)]
    pub remove_tags: Vec<String>,
    /// New text for what is at stake.
    #[uniffi(default)]
    pub at_stake: Option<String>,
    /// New text for the client's voice.
    #[uniffi(default)]
    pub client_voice: Option<String>,
    /// New CAIMeR texts.
    #[uniffi(default)]
    pub caimer: Vec<CaimerText>,
    /// New consent.
    #[uniffi(default)]
    pub consent: Option<Consent>,
    /// Network ids to share with (refused while consent is withdrawn).
    #[uniffi(default)]
    pub share_with: Vec<String>,
    /// Network ids to stop sharing with: their members' copies are deleted at their next
    /// sync. Withdrawing consent unshares from every network.
    #[uniffi(default)]
    pub unshare_from: Vec<String>,
}

impl TryFrom<CaseUpdate> for m::CaseUpdate {
    type Error = NabijError;
    fn try_from(u: CaseUpdate) -> Result<Self, NabijError> {
        Ok(Self {
            share_with: parse_ids(&u.share_with)?,
            unshare_from: parse_ids(&u.unshare_from)?,
            subject: u.subject,
            status: u.status.map(Into::into),
            add_tags: u.add_tags,
            remove_tags: u.remove_tags,
            at_stake: u.at_stake,
            client_voice: u.client_voice,
            caimer: u.caimer.into_iter().map(|c| (c.field, c.text)).collect(),
            consent: u.consent.map(Into::into),
        })
    }
}

/// An item to add to a case.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum CaseItem {
    /// An opgave.
    Opgave {
        /// The text.
        text: String,
    },
    /// A turning point.
    TurningPoint {
        /// When.
        when: String,
        /// What.
        description: String,
    },
    /// Someone around the person.
    Actor {
        /// Name or role.
        name: String,
        /// Relation.
        relation: String,
    },
    /// An agreement.
    Agreement {
        /// What.
        text: String,
        /// Who.
        owner: String,
        /// Due date, `YYYY-MM-DD`.
        due: Option<String>,
    },
}

impl From<CaseItem> for m::CaseItem {
    fn from(i: CaseItem) -> Self {
        match i {
            CaseItem::Opgave { text } => m::CaseItem::Opgave { text },
            CaseItem::TurningPoint { when, description } => {
                m::CaseItem::TurningPoint { when, description }
            }
            CaseItem::Actor { name, relation } => m::CaseItem::Actor { name, relation },
            CaseItem::Agreement { text, owner, due } => m::CaseItem::Agreement { text, owner, due },
        }
    }
}

/// Input for a new note.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewNote {
    /// What it records.
    pub kind: NoteKind,
    /// The text (required).
    pub text: String,
}

impl From<NewNote> for m::NewNote {
    fn from(n: NewNote) -> Self {
        Self { kind: n.kind.into(), text: n.text }
    }
}

/// Input for a new learning point.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewLearningPoint {
    /// Title (required).
    pub title: String,
    /// The insight.
    #[uniffi(default)]
    pub insight: String,
    /// Case ids it came from.
    #[uniffi(default)]
    pub cases: Vec<String>,
    /// Sources.
    #[uniffi(default)]
    pub sources: Vec<String>,
    /// Tags.
    #[uniffi(default)]
    pub tags: Vec<String>,
    /// Network ids to share it with.
    #[uniffi(default)]
    pub networks: Vec<String>,
}

impl TryFrom<NewLearningPoint> for m::NewLearningPoint {
    type Error = NabijError;
    fn try_from(l: NewLearningPoint) -> Result<Self, NabijError> {
        Ok(Self {
            cases: parse_ids(&l.cases)?,
            networks: parse_ids(&l.networks)?,
            title: l.title,
            insight: l.insight,
            sources: l.sources,
            tags: l.tags,
        })
    }
}

/// A perspective to add to a learning point.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewPerspective {
    /// Whose view.
    pub kind: PerspectiveKind,
    /// Who holds it (a role, never a client's real name).
    pub who: String,
    /// The view (required).
    pub text: String,
}

/// A change to a learning point; `null`/`None` and empty lists leave a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct LearningPointUpdate {
    /// New title.
    #[uniffi(default)]
    pub title: Option<String>,
    /// New insight text.
    #[uniffi(default)]
    pub insight: Option<String>,
    /// New status.
    #[uniffi(default)]
    pub status: Option<LearningPointStatus>,
    /// The meeting id where it was discussed.
    #[uniffi(default)]
    pub meeting: Option<String>,
    /// Case ids to link.
    #[uniffi(default)]
    pub add_cases: Vec<String>,
    /// Sources to add.
    #[uniffi(default)]
    pub add_sources: Vec<String>,
    /// Perspectives to add.
    #[uniffi(default)]
    pub add_perspectives: Vec<NewPerspective>,
    /// Tags to add.
    #[uniffi(default)]
    pub add_tags: Vec<String>,
}

impl TryFrom<LearningPointUpdate> for m::LearningPointUpdate {
    type Error = NabijError;
    fn try_from(u: LearningPointUpdate) -> Result<Self, NabijError> {
        Ok(Self {
            meeting: parse_opt_id(u.meeting.as_deref())?,
            add_cases: parse_ids(&u.add_cases)?,
            title: u.title,
            insight: u.insight,
            status: u.status.map(Into::into),
            add_sources: u.add_sources,
            add_perspectives: u
                .add_perspectives
                .into_iter()
                .map(|p| (p.kind.into(), p.who, p.text))
                .collect(),
            add_tags: u.add_tags,
        })
    }
}

/// Input for a new meeting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewMeeting {
    /// Date, `YYYY-MM-DD` (required).
    pub date: String,
    /// The network id that meets.
    #[uniffi(default)]
    pub network: Option<String>,
    /// Place.
    #[uniffi(default)]
    pub place: String,
    /// Participants.
    #[uniffi(default)]
    pub participants: Vec<String>,
    /// Case ids on the agenda.
    #[uniffi(default)]
    pub agenda: Vec<String>,
}

impl TryFrom<NewMeeting> for m::NewMeeting {
    type Error = NabijError;
    fn try_from(x: NewMeeting) -> Result<Self, NabijError> {
        Ok(Self {
            network: parse_opt_id(x.network.as_deref())?,
            agenda: parse_ids(&x.agenda)?,
            date: x.date,
            place: x.place,
            participants: x.participants,
        })
    }
}

/// An agreement made in a meeting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewAgreement {
    /// What was agreed (required).
    pub text: String,
    /// Who acts on it.
    #[uniffi(default)]
    pub owner: String,
    /// Due date, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub due: Option<String>,
}

/// A change to a meeting; `null`/`None` and empty lists leave a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct MeetingUpdate {
    /// New place.
    #[uniffi(default)]
    pub place: Option<String>,
    /// New minutes text.
    #[uniffi(default)]
    pub minutes: Option<String>,
    /// Participants to add.
    #[uniffi(default)]
    pub add_participants: Vec<String>,
    /// Case ids to add to the agenda.
    #[uniffi(default)]
    pub add_agenda: Vec<String>,
    /// Learning point ids captured.
    #[uniffi(default)]
    pub add_learning_points: Vec<String>,
    /// Agreements made.
    #[uniffi(default)]
    pub add_agreements: Vec<NewAgreement>,
}

impl TryFrom<MeetingUpdate> for m::MeetingUpdate {
    type Error = NabijError;
    fn try_from(u: MeetingUpdate) -> Result<Self, NabijError> {
        Ok(Self {
            add_agenda: parse_ids(&u.add_agenda)?,
            add_learning_points: parse_ids(&u.add_learning_points)?,
            place: u.place,
            minutes: u.minutes,
            add_participants: u.add_participants,
            add_agreements: u
                .add_agreements
                .into_iter()
                .map(|a| (a.text, a.owner, a.due))
                .collect(),
        })
    }
}

/// Which cases to list. All fields are optional filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct CaseFilter {
    /// Only cases shared with this network id.
    #[uniffi(default)]
    pub network: Option<String>,
    /// Only cases with this status.
    #[uniffi(default)]
    pub status: Option<CaseStatus>,
    /// Only cases with this tag.
    #[uniffi(default)]
    pub tag: Option<String>,
    /// At most this many (default 50).
    #[uniffi(default)]
    pub limit: Option<u32>,
    /// Skip this many.
    #[uniffi(default)]
    pub offset: u32,
}

impl TryFrom<CaseFilter> for m::CaseFilter {
    type Error = NabijError;
    fn try_from(f: CaseFilter) -> Result<Self, NabijError> {
        Ok(Self {
            network: parse_opt_id(f.network.as_deref())?,
            status: f.status.map(Into::into),
            tag: f.tag,
            limit: f.limit,
            offset: f.offset,
        })
    }
}
