//! `nabij demo`: a day in "Wijknetwerk Oost", written on five phones and synced at the
//! casusbespreking, then shown as the wijkwerker sees it on hers.
//!
//! The four colleagues' phones are real devices in a temporary folder, removed afterwards; what
//! they wrote reaches the demo store by the same merge a sync driver uses. A scripted clock puts
//! the day's writes at realistic times (yesterday, UTC), so timelines and history read like one.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use nabij_core::{
    Clock, Device, DeviceOptions, DocId, StoreKey,
    model::CaseFilter,
    model::{
        CaseItem, CaseUpdate, Consent, ConsentStatus, LearningPointStatus, LearningPointUpdate,
        MeetingUpdate, NewCase, NewLearningPoint, NewMeeting, NewNote, NoteKind, PerspectiveKind,
    },
};
use serde_json::json;

use crate::{
    commands::{App, print},
    error::{CliError, Result},
    text::{self, short},
    view::{self, Detail},
};

const NETWORK: &str = "Wijknetwerk Oost";
const FATIMA: &str = "Fatima Amrani (wijkwerker)";
const JOOST: &str = "Joost de Vries (buurtpastor)";
const SEM: &str = "Sem Bakker (jongerenwerker)";
const MARLEEN: &str = "Marleen Kok (POH huisartsenpraktijk)";
const RUUD: &str = "Ruud Jansen (woonconsulent)";
const SEARCH: &str = "schaamte";

/// A clock the demo sets before each write.
#[derive(Debug, Default)]
struct ScriptClock(AtomicI64);

impl Clock for ScriptClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The demo day and its clock.
struct Script {
    clock: Arc<ScriptClock>,
    day: i64,
}

impl Script {
    /// Sets the clock to `days` after the demo day (negative: before), at `hh:mm`.
    fn at(&self, days: i64, hh: i64, mm: i64) {
        let ms = (self.day + days) * 86_400_000 + (hh * 60 + mm) * 60_000;
        self.clock.0.store(ms, Ordering::Relaxed);
    }

    /// Moves the clock on a minute (keeps items added in a row in their order).
    fn tick(&self) {
        self.clock.0.fetch_add(60_000, Ordering::Relaxed);
    }

    /// `YYYY-MM-DD`, `days` after the demo day.
    fn date(&self, days: i64) -> String {
        text::date_of_day(self.day + days)
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::storage(format!("cannot remove old {}: {e}", path.display()))),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Sends every document each of two devices holds to the other (what two phones in one room do).
fn sync(a: &Device, b: &Device) -> Result<()> {
    for (from, to) in [(a, b), (b, a)] {
        for (id, _) in from.document_ids()? {
            to.merge_document(&from.export_document(id)?)?;
        }
    }
    Ok(())
}

/// Everyone with everyone, through the first device (twice, so the first ones get the last).
fn sync_all(devices: &[&Device]) -> Result<()> {
    if let Some((hub, rest)) = devices.split_first() {
        for _ in 0..2 {
            for d in rest {
                sync(hub, d)?;
            }
        }
    }
    Ok(())
}

/// The demo: seed, then show.
pub(crate) fn run(
    store: Option<PathBuf>,
    key: Option<StoreKey>,
    json: bool,
    width: usize,
) -> Result<()> {
    let (path, explicit) = match store {
        Some(p) => (p, true),
        None => (PathBuf::from("nabij-demo.db"), false),
    };
    if explicit {
        if path.exists() {
            let dev = crate::commands::open(&path, false, key.clone())?;
            let n = dev.document_ids()?.len();
            if n > 0 {
                return Err(CliError::invalid(format!(
                    "{} already holds {}; the demo seeds a new store (give another --store, \
                     or none for ./nabij-demo.db)",
                    path.display(),
                    text::plural(n, "document", "documents")
                )));
            }
        }
    } else {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            remove_if_present(&with_suffix(&path, suffix))?;
        }
    }

    let clock = Arc::new(ScriptClock::default());
    let script = Script { clock: clock.clone(), day: text::day_of(text::now_ms()) - 1 };
    let options =
        DeviceOptions { clock: clock.clone(), key: key.clone(), ..DeviceOptions::default() };
    let peers_dir = std::env::temp_dir().join(format!(
        "nabij-demo-peers-{}-{}",
        std::process::id(),
        text::now_ms()
    ));
    std::fs::create_dir_all(&peers_dir)
        .map_err(|e| CliError::storage(format!("cannot create {}: {e}", peers_dir.display())))?;
    let seeded = seed_devices(&script, &options, &path, &peers_dir);
    // The colleagues' phones go; only the demo store stays.
    let _ = std::fs::remove_dir_all(&peers_dir);
    let (me, ids) = seeded?;
    drop(me);

    // Show it as the worker's own device opens it, on the real clock.
    let dev = crate::commands::open(&path, false, key)?;
    let app = App { dev, json, store: path.clone(), width };
    show(&app, &ids, &path)
}

/// Opens the demo store and the colleagues' phones, and writes the day.
fn seed_devices(
    script: &Script,
    options: &DeviceOptions,
    path: &Path,
    peers_dir: &Path,
) -> Result<(Device, Seeded)> {
    let me = Device::open_with(path, options.clone())
        .map_err(|e| CliError::from(e).context(format!("store {}", path.display())))?;
    let peer = |name: &str| -> Result<Device> {
        Ok(Device::open_with(peers_dir.join(name), options.clone())?)
    };
    let peers = Peers {
        joost: peer("joost.db")?,
        sem: peer("sem.db")?,
        marleen: peer("marleen.db")?,
        ruud: peer("ruud.db")?,
    };
    let ids = seed(script, &me, &peers)?;
    Ok((me, ids))
}

struct Peers {
    joost: Device,
    sem: Device,
    marleen: Device,
    ruud: Device,
}

/// What the demo made, for showing it.
struct Seeded {
    network: DocId,
    mother: DocId,
    elder: DocId,
    meeting: DocId,
    avoidance: DocId,
}

fn note(dev: &Device, case: DocId, kind: NoteKind, text: &str) -> Result<nabij_core::NoteId> {
    Ok(dev.add_note(case, NewNote { kind, text: text.to_string() })?)
}

fn agreement(
    dev: &Device,
    case: DocId,
    text: &str,
    owner: &str,
    due: Option<String>,
) -> Result<()> {
    dev.add_case_item(case, CaseItem::Agreement { text: text.into(), owner: owner.into(), due })?;
    Ok(())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[allow(clippy::too_many_lines)]
fn seed(s: &Script, me: &Device, p: &Peers) -> Result<Seeded> {
    let everyone = [me, &p.joost, &p.sem, &p.marleen, &p.ruud];
    for (dev, name) in everyone.iter().zip([FATIMA, JOOST, SEM, MARLEEN, RUUD]) {
        dev.set_display_name(name)?;
    }

    // A month ago: the network, with everyone's phone in it.
    s.at(-30, 9, 0);
    let network = me.create_network(NETWORK)?;
    for (dev, name) in [(&p.joost, JOOST), (&p.sem, SEM), (&p.marleen, MARLEEN), (&p.ruud, RUUD)] {
        dev.join(&me.invite(network, dev.member_id(), name, dev.device_key())?)?;
    }
    sync_all(&everyone)?;
    let nets = vec![network];

    // Three weeks ago: Sem starts a case about a boy at the community centre.
    s.at(-21, 15, 20);
    let youth = p.sem.create_case(NewCase {
        subject: "K. (17), buurthuis De Kroon".into(),
        tags: strings(&["jongeren", "buurthuis", "school"]),
        at_stake: "Ergens bij horen zonder 'de lastige' te zijn. Een plek waar hij niet \
                   weggestuurd wordt."
            .into(),
        client_voice: "\"Thuis is het te vol en op school snappen ze me niet. Hier zegt \
                       niemand dat ik weg moet.\""
            .into(),
        networks: nets.clone(),
    })?;
    s.tick();
    note(
        &p.sem,
        youth,
        NoteKind::Observation,
        "Derde week dat K. 's middags bij de ingang van het buurthuis hangt, ook op \
         schooldagen. Buren klagen over 'overlast'. Vandaag hielp hij ongevraagd met \
         opruimen na de kookclub en bleef tot de laatste pan schoon was.",
    )?;

    // Two weeks ago: Joost, after the Thursday walk-in at the church hall.
    s.at(-14, 11, 0);
    let elder = p.joost.create_case(NewCase {
        subject: "Meneer D. (81)".into(),
        tags: strings(&["ouderen", "gezondheid", "eenzaamheid", "vermijding"]),
        at_stake: "In het huis blijven wonen waar hij veertig jaar met zijn vrouw woonde. Hij is \
                   bang dat een bezoek aan de huisarts eindigt in 'een tehuis'."
            .into(),
        client_voice: "\"Als ik naar de dokter ga, komen ze met formulieren. En dan ben ik mijn \
                       huis kwijt.\""
            .into(),
        networks: nets.clone(),
    })?;
    s.tick();
    note(
        &p.joost,
        elder,
        NoteKind::Observation,
        "Koffie na de inloop. Meneer D. loopt slechter dan in de zomer en trekt zijn linkerbeen \
         bij. Sinds zijn vrouw overleed (voorjaar 2023) is hij niet meer bij de huisarts \
         geweest; de buurvrouw haalt zijn herhaalrecepten.",
    )?;

    // A week ago: Fatima's case, after a call from the school.
    s.at(-7, 10, 0);
    let mother = me.create_case(NewCase {
        subject: "Moeder R. en dochter L. (15)".into(),
        tags: strings(&["lvb", "school", "hygiëne", "opvoeding"]),
        at_stake: "Moeder wil vooral laten zien dat ze een goede moeder is en is bang dat school \
                   'jeugdzorg belt'. L. wil er netjes uitzien en niet meer nagewezen worden in de \
                   klas."
            .into(),
        client_voice: "Moeder: \"Ik was alles heet, zo heeft mijn moeder het mij geleerd. Dan is \
                       het pas echt schoon.\"\nL.: \"Mijn hoodie kwam twee maten kleiner uit de \
                       droger. Die andere trui geef ik dus niet meer mee.\""
            .into(),
        networks: nets.clone(),
    })?;
    s.tick();
    me.update_case(
        mother,
        CaseUpdate {
            consent: Some(Consent {
                status: ConsentStatus::Given,
                scope: "Wijknetwerk Oost, casusbespreking".into(),
                date: Some(s.date(-7)),
            }),
            ..CaseUpdate::default()
        },
    )?;
    for item in [
        CaseItem::Opgave { text: "Kleding die de manier van wassen van moeder overleeft".into() },
        CaseItem::Opgave { text: "Het contact met school herstellen zonder schaamte".into() },
        CaseItem::TurningPoint {
            when: "2019".into(),
            description: "Scheiding; sindsdien moeder alleen met L.".into(),
        },
        CaseItem::TurningPoint {
            when: "september dit jaar".into(),
            description: "L. naar het vmbo, in een andere wijk".into(),
        },
        CaseItem::Actor { name: "Mentor vmbo".into(), relation: "school, deed de melding".into() },
        CaseItem::Actor {
            name: "Oma (moeder van R.)".into(),
            relation: "leerde R. zo wassen".into(),
        },
        CaseItem::Actor { name: "Sem Bakker".into(), relation: "jongerenwerk, meidenavond".into() },
    ] {
        s.tick();
        me.add_case_item(mother, item)?;
    }

    // Planning the casusbespreking.
    s.at(-7, 14, 0);
    let meeting = me.create_meeting(NewMeeting {
        network: Some(network),
        date: s.date(0),
        place: "Buurthuis De Kroon, zaal boven".into(),
        participants: strings(&["Fatima", "Joost", "Sem", "Marleen", "Ruud"]),
        agenda: vec![mother, elder, youth],
    })?;

    // Three days ago: Ruud, about rent arrears.
    s.at(-3, 16, 0);
    let family = p.ruud.create_case(NewCase {
        subject: "Familie B. (huurachterstand)".into(),
        tags: strings(&["schulden", "wonen", "gezin", "vermijding"]),
        at_stake: "De woning houden, zodat de kinderen (4 en 9) op hun eigen school kunnen \
                   blijven."
            .into(),
        client_voice: "Vader: \"We betalen altijd eerst de huur. Maar na de energierekening was \
                       er niks meer. Die brieven durfde ik niet meer open te maken.\""
            .into(),
        networks: nets.clone(),
    })?;
    s.tick();
    note(
        &p.ruud,
        family,
        NoteKind::Observation,
        "Drie maanden huurachterstand (€ 2.340). Op vier brieven en twee belafspraken geen \
         reactie. Vandaag onaangekondigd langs: vader deed open, stapel ongeopende post op de \
         kast. Hij werkt in ploegendienst, inkomen wisselt per maand.",
    )?;
    // The phones meet the relay: everyone has everything so far.
    sync_all(&everyone)?;

    // ---- The day -------------------------------------------------------------------------
    s.at(0, 8, 40);
    note(
        &p.ruud,
        family,
        NoteKind::Agreement,
        "Betalingsregeling afgesproken: € 120 per maand bovenop de huur. De ontruimingsprocedure \
         staat stil zolang de regeling loopt.",
    )?;
    s.tick();
    agreement(
        &p.ruud,
        family,
        "Betalingsregeling vastleggen en opsturen",
        "Ruud",
        Some(s.date(2)),
    )?;

    s.at(0, 9, 10);
    let visit = note(
        me,
        mother,
        NoteKind::Observation,
        "Huisbezoek. School meldde dat L. 'onverzorgd' op school komt en dat klasgenoten haar \
         ermee pesten. Thuis is het opgeruimd en de wasmand is leeg: moeder wast juist vaak, \
         alles samen, heet, en daarna de droger op de hoogste stand. L.'s kleren zijn gekrompen \
         en verkleurd; de paar dingen die nog passen houdt ze buiten de was en draagt ze dagen \
         achter elkaar.",
    )?;
    s.at(0, 9, 35);
    note(
        me,
        mother,
        NoteKind::Reflection,
        "Ik ging erheen met het woord 'verwaarlozing' van school in mijn hoofd. Wat ik zag was \
         zorg, op de manier die moeder van oma leerde. Was ik over hygiëne begonnen, dan was de \
         deur dichtgegaan uit schaamte. Vragen of ze wilde laten zien hoe ze wast, opende het \
         gesprek: zij was de deskundige.",
    )?;
    s.at(0, 9, 50);
    note(
        me,
        mother,
        NoteKind::Agreement,
        "Samen met moeder: wasvoorschriften met plaatjes bij de wasmachine, apart wasgoed voor \
         L. op dertig graden, en zaterdag samen naar de kringloop. Moeder belt zelf de mentor; \
         ik zit ernaast.",
    )?;
    for (text, owner, due) in [
        ("Wasvoorschriften met pictogrammen bij de wasmachine", "Fatima", None),
        ("Samen naar de kringloopwinkel voor kleding", "Fatima en moeder", Some(s.date(1))),
        ("Gesprek met de mentor; moeder voert het woord", "moeder, Fatima", Some(s.date(6))),
    ] {
        s.tick();
        agreement(me, mother, text, owner, due)?;
    }
    s.tick();
    // Consent, as Fatima heard it this morning...
    me.update_case(
        mother,
        CaseUpdate {
            consent: Some(Consent {
                status: ConsentStatus::Given,
                scope: "Wijknetwerk Oost, casusbespreking; mentor op school".into(),
                date: Some(s.date(-7)),
            }),
            ..CaseUpdate::default()
        },
    )?;
    s.at(0, 10, 0);
    note(
        me,
        mother,
        NoteKind::Question,
        "Vraag voor het netwerk: hoe brengen we dit terug naar school zonder dat L. opnieuw 'het \
         probleemgeval' wordt? En wie kent een manier om aan passende kleding te komen die niet \
         voelt als liefdadigheid?",
    )?;

    s.at(0, 10, 20);
    note(
        &p.joost,
        elder,
        NoteKind::Observation,
        "Bij hem thuis koffie gedronken, op zijn uitnodiging. Het been is dik en rood rond de \
         enkel. Hij weet dat het niet goed is: 'maar als ik ga, blijf ik daar'. Over zijn vrouw \
         vertelde hij voor het eerst uit zichzelf.",
    )?;
    s.tick();
    note(
        &p.joost,
        elder,
        NoteKind::Question,
        "Kan de praktijkondersteuner op huisbezoek komen als kennismaking, zonder formulieren, \
         met mij erbij?",
    )?;
    // Marleen reads the question at the practice (synced through the relay at lunch).
    sync(&p.joost, &p.marleen)?;
    s.at(0, 11, 15);
    note(
        &p.marleen,
        elder,
        NoteKind::Observation,
        "Meneer D. staat bij ons als 'niet bereikbaar' na twee oproepen voor de griepprik. Een \
         kennismaking thuis kan; de eerste keer geen vragenlijsten. Het been moet wel binnen een \
         week bekeken worden.",
    )?;
    s.tick();
    agreement(
        &p.marleen,
        elder,
        "Kennismaking thuis met de POH, Joost gaat mee",
        "Marleen, Joost",
        Some(s.date(4)),
    )?;

    s.at(0, 12, 40);
    note(
        &p.sem,
        youth,
        NoteKind::Observation,
        "K. vroeg of hij 'echt mee mag koken' op woensdag. Hij noemde voor het eerst school: \
         hij is sinds de herfstvakantie niet meer geweest en schaamt zich om terug te gaan.",
    )?;
    s.tick();
    note(
        &p.sem,
        youth,
        NoteKind::Reflection,
        "De buren zien overlast, ik zie iemand die een plek zoekt. Als ik nu de leerplicht bel, \
         ben ik de volgende die hem wegstuurt. Eerst de kookclub, dan samen naar school.",
    )?;
    s.at(0, 13, 0);
    note(
        &p.sem,
        mother,
        NoteKind::Observation,
        "L. was op de meidenavond. Ze hield haar jas de hele avond aan. Toen het over kleren \
         ging, zei ze zacht dat 'alles bij ons krimpt'.",
    )?;
    s.tick();
    // ...and as Sem heard it from L.'s mother at the door, at the same time: a conflict.
    p.sem.update_case(
        mother,
        CaseUpdate {
            consent: Some(Consent {
                status: ConsentStatus::Given,
                scope: "Wijknetwerk Oost, casusbespreking; jongerenwerk".into(),
                date: Some(s.date(-7)),
            }),
            ..CaseUpdate::default()
        },
    )?;

    // 14:00, the casusbespreking: five phones in one room converge.
    s.at(0, 14, 0);
    sync_all(&everyone)?;

    s.at(0, 15, 30);
    me.update_meeting(
        meeting,
        MeetingUpdate {
            minutes: Some(
                "Moeder R. en L.: geen hygiëneprobleem maar een wasgewoonte van oma. Aansluiten, \
                 niet corrigeren. Toestemming: Sem en Fatima hoorden iets anders; Fatima vraagt \
                 het opnieuw.\n\
                 Meneer D.: het been kan niet wachten; Marleen gaat met Joost mee.\n\
                 K.: meedraaien in de kookclub; Sem zoekt contact met het ROC (opleiding koken).\n\
                 Patroon in drie casussen: mensen mijden wie ze beoordeelt, uit schaamte. \
                 Joost schrijft het leerpunt."
                    .into(),
            ),
            ..MeetingUpdate::default()
        },
    )?;
    // One at a time, so they keep this order.
    for (text, owner, due) in [
        ("Toestemming opnieuw navragen bij moeder R.", "Fatima", Some(s.date(3))),
        ("Contact met het ROC over meelopen bij koken", "Sem", Some(s.date(14))),
        ("Familie B. op de agenda van de volgende bespreking", "Ruud", None),
    ] {
        s.tick();
        me.update_meeting(
            meeting,
            MeetingUpdate {
                add_agreements: vec![(text.into(), owner.into(), due)],
                ..MeetingUpdate::default()
            },
        )?;
    }

    // Joost writes the learning point on his phone, right after.
    s.at(0, 15, 40);
    let avoidance = p.joost.create_learning_point(NewLearningPoint {
        title: "Vermijden is vaak schaamte, geen onwil".into(),
        insight: "Bij Meneer D. (huisarts), familie B. (post) en moeder R. (school) zagen we \
                  hetzelfde: mensen mijden de instantie waar ze zich beoordeeld voelen. Wat werkte, \
                  was een eerste contact op hun eigen terrein, zonder formulieren, met iemand die \
                  ze al kenden. Eerst aansluiten, dan pas het probleem."
            .into(),
        cases: vec![elder, family, mother],
        sources: strings(&[
            "Baart, A. (2001). Een theorie van de presentie. Utrecht: Lemma.",
            "Blom, B. & Morén, S. (2011). Theorizing social work practice: the CAIMeR theory.",
        ]),
        tags: strings(&["presentie", "vermijding", "schaamte"]),
        networks: nets.clone(),
    })?;
    s.tick();
    p.joost.update_learning_point(
        avoidance,
        LearningPointUpdate {
            status: Some(LearningPointStatus::Discussed),
            meeting: Some(meeting),
            add_perspectives: vec![
                (
                    PerspectiveKind::ClientVoice,
                    "Meneer D., via de buurtpastor".into(),
                    "\"Hij kwam gewoon koffie drinken. Pas de derde keer vroeg hij naar mijn \
                     been.\""
                        .into(),
                ),
                (
                    PerspectiveKind::Professional,
                    "POH huisartsenpraktijk".into(),
                    "'Niet bereikbaar' in ons systeem zegt vaak meer over onze manier van \
                     benaderen dan over de patiënt."
                        .into(),
                ),
            ],
            ..LearningPointUpdate::default()
        },
    )?;
    sync(&p.joost, &p.ruud)?;
    s.at(0, 15, 50);
    p.ruud.update_learning_point(
        avoidance,
        LearningPointUpdate {
            add_perspectives: vec![(
                PerspectiveKind::Dissent,
                "woonconsulent".into(),
                "Wachten heeft een prijs: bij huurachterstand loopt de termijn door. Aansluiten \
                 mag geen reden zijn om een ontruiming te laat te stoppen."
                    .into(),
            )],
            ..LearningPointUpdate::default()
        },
    )?;
    sync_all(&everyone)?;
    s.at(0, 15, 55);
    me.update_meeting(
        meeting,
        MeetingUpdate { add_learning_points: vec![avoidance], ..MeetingUpdate::default() },
    )?;

    // Back at her desk: Fatima finishes her notes.
    s.at(0, 16, 10);
    me.update_case(
        mother,
        CaseUpdate {
            caimer: vec![
                (
                    "context".into(),
                    "Eenoudergezin, moeder met een licht verstandelijke beperking; L. sinds \
                     september op een vmbo buiten de wijk."
                        .into(),
                ),
                (
                    "actors".into(),
                    "Moeder, L., oma (op afstand), mentor, jongerenwerk, wijkwerker.".into(),
                ),
                (
                    "interventions".into(),
                    "Meekijken bij het wassen in plaats van aanspreken op hygiëne; \
                     wasvoorschriften met plaatjes; samen kleding kopen."
                        .into(),
                ),
                (
                    "mechanisms".into(),
                    "Moeder blijft deskundige van haar huishouden; geen gezichtsverlies, dus \
                     ruimte om iets nieuws te proberen."
                        .into(),
                ),
                (
                    "results".into(),
                    "Kort: wasgoed van L. apart. Nog open: het contact met school. Onbedoeld: L. \
                     schaamt zich nu voor de gesprekken over haar thuis."
                        .into(),
                ),
            ],
            ..CaseUpdate::default()
        },
    )?;
    s.tick();
    let pictograms = me.case(mother)?.agreements.first().map(|a| a.id);
    if let Some(a) = pictograms {
        me.set_case_agreement_done(mother, a, true)?;
    }
    s.at(0, 16, 15);
    me.edit_note(
        mother,
        visit,
        "Huisbezoek. School meldde dat L. 'onverzorgd' op school komt en dat klasgenoten haar \
         ermee pesten. Thuis is het opgeruimd en de wasmand is leeg: moeder wast juist vaak, \
         alles samen, heet, en daarna de droger op de hoogste stand. L.'s kleren zijn gekrompen \
         en verkleurd; de paar dingen die nog passen houdt ze buiten de was en draagt ze dagen \
         achter elkaar. Moeder liet trots zien hoe ze het doet.",
    )?;
    s.at(0, 16, 25);
    note(
        me,
        family,
        NoteKind::Reflection,
        "Zelfde patroon als bij Meneer D.: de ongeopende post is geen onwil maar schaamte en het \
         overzicht kwijt zijn. Voorstel aan vader: elke dinsdag samen de post openen, hij \
         houdt de stapel zelf in handen.",
    )?;
    s.tick();
    agreement(me, family, "Elke dinsdag samen de post openen", "Fatima, vader", Some(s.date(4)))?;

    s.at(0, 16, 40);
    let behind = me.create_learning_point(NewLearningPoint {
        title: "Vraag door achter de melding".into(),
        insight: "De melding van school ('onverzorgd') beschreef wat zichtbaar was, niet wat er \
                  speelde. De opgave bleek kleding die de manier van wassen overleeft. Bij K. zag \
                  het buurthuis 'overlast' waar een jongen een plek zocht. Neem een melding als \
                  begin van een vraag, niet als diagnose."
            .into(),
        cases: vec![mother, youth],
        sources: strings(&["Schön, D. (1983). The Reflective Practitioner."]),
        tags: strings(&["melding", "reflectie"]),
        networks: nets.clone(),
    })?;
    s.tick();
    me.update_learning_point(
        behind,
        LearningPointUpdate {
            add_perspectives: vec![
                (
                    PerspectiveKind::ClientVoice,
                    "moeder R.".into(),
                    "\"Iedereen dacht dat ik vies was. Ik was juist vaker dan wie ook.\"".into(),
                ),
                (
                    PerspectiveKind::Dissent,
                    "jongerenwerker".into(),
                    "Soms is een melding precies wat hij lijkt. Doorvragen mag een signaal van \
                     onveiligheid niet afzwakken."
                        .into(),
                ),
            ],
            ..LearningPointUpdate::default()
        },
    )?;

    // Evening: the last sync of the day.
    s.at(0, 17, 0);
    sync_all(&everyone)?;
    Ok(Seeded { network, mother, elder, meeting, avoidance })
}

fn section(title: &str, command: &str, width: usize) -> String {
    let head = format!("━━ {title} ");
    let cmd = format!(" {command}");
    let fill = width.saturating_sub(head.chars().count() + cmd.chars().count()).max(3);
    format!("\n{head}{}{cmd}\n", "━".repeat(fill))
}

fn show(app: &App, ids: &Seeded, path: &Path) -> Result<()> {
    let dev = &app.dev;
    let cases = dev.list_cases(&CaseFilter::default())?;
    let case = dev.case(ids.mother)?;
    let notes = dev.case_timeline(ids.mother)?;
    let citing = dev.learning_points_citing(ids.mother)?;
    let meeting = dev.meeting(ids.meeting)?;
    let contents = dev.meeting_contents(ids.meeting)?;
    let lp = dev.learning_point(ids.avoidance)?;
    let hits = dev.search(SEARCH, 4)?;
    let network = dev.network(ids.network)?;

    if app.json {
        let v = json!({
            "store": path.display().to_string(),
            "me": {
                "display_name": dev.display_name(),
                "member_id": dev.member_id(),
                "device_key": dev.device_key(),
            },
            "network": network,
            "cases": cases,
            "case": { "case": case, "notes": notes, "learning_points": citing },
            "meeting": {
                "meeting": meeting,
                "agenda": contents.agenda,
                "learning_points": contents.learning_points,
            },
            "learning_point": lp,
            "search": { "query": SEARCH, "hits": hits },
        });
        let s = serde_json::to_string_pretty(&v)
            .map_err(|e| CliError::failure(format!("cannot encode JSON: {e}")))?;
        return print(&format!("{s}\n"));
    }

    let w = app.width;
    let names = app.names()?;
    let store = path.display().to_string();
    let n = |id: DocId| short(id);
    let mut out = format!("Nabij demo: a day in {NETWORK}, {}\n", meeting.date);
    let intro = format!(
        "Store {store}; you are {}. Four colleagues wrote on their own phones, which synced \
         with yours at the casusbespreking.",
        dev.display_name()
    );
    for l in text::wrap(&intro, 0, w) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&section("Your cases, newest activity first", "nabij case list", w));
    out.push_str(&view::case_list(&cases, w));
    out.push_str(&section(
        "A case and its timeline",
        &format!("nabij case show {}", n(ids.mother)),
        w,
    ));
    out.push_str(&view::case_full(&case, &notes, &citing, &names, Detail::Compact, w));
    out.push_str(&section(
        "The casusbespreking",
        &format!("nabij meeting show {}", n(ids.meeting)),
        w,
    ));
    out.push_str(&view::meeting_full(&meeting, &contents, &names, w));
    out.push_str(&section(
        &format!("A learning point citing {}", text::truncate(&dev.case(ids.elder)?.subject, 20)),
        &format!("nabij lp show {}", n(ids.avoidance)),
        w,
    ));
    out.push_str(&view::lp_full(&lp, &names, Detail::Compact, w));
    out.push_str(&section(&format!("Search “{SEARCH}”"), &format!("nabij search {SEARCH}"), w));
    out.push_str(&view::search_hits(SEARCH, &hits, 1, w));
    out.push_str(&format!(
        "\nGo on: export NABIJ_STORE={store}, then for example\n  \
         nabij history {}                              who changed what, when\n  \
         nabij note add {} --kind reflection \"…\"\n  \
         nabij case update {} --consent given --consent-scope \"…\"   settle the conflict\n",
        n(ids.mother),
        n(ids.elder),
        n(ids.mother),
    ));
    print(&out)
}
