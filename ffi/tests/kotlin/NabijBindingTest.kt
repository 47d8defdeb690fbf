// End-to-end test of the generated Kotlin bindings: the core scenario an Android app runs.
// Compiled and run by ffi/test-bindings.sh; exits non-zero (an uncaught exception) on failure.

import java.nio.file.Files
import java.nio.file.Path
import java.util.Collections
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import uniffi.nabij_ffi.CaseFilter
import uniffi.nabij_ffi.CaseItem
import uniffi.nabij_ffi.CaseStatus
import uniffi.nabij_ffi.CaseUpdate
import uniffi.nabij_ffi.ChangeListener
import uniffi.nabij_ffi.Consent
import uniffi.nabij_ffi.ConsentStatus
import uniffi.nabij_ffi.Device
import uniffi.nabij_ffi.DocKind
import uniffi.nabij_ffi.HitKind
import uniffi.nabij_ffi.NabijException
import uniffi.nabij_ffi.NewCase
import uniffi.nabij_ffi.NewLearningPoint
import uniffi.nabij_ffi.NewMeeting
import uniffi.nabij_ffi.NewNote
import uniffi.nabij_ffi.NoteKind
import uniffi.nabij_ffi.ProgressListener
import uniffi.nabij_ffi.RemovalReason
import uniffi.nabij_ffi.RemovedDevice
import uniffi.nabij_ffi.Role
import uniffi.nabij_ffi.StoreState
import uniffi.nabij_ffi.SyncProgress
import uniffi.nabij_ffi.encryptStore
import uniffi.nabij_ffi.newStoreKey
import uniffi.nabij_ffi.readDeviceCard
import uniffi.nabij_ffi.storeState

private var checks = 0

private fun expect(condition: Boolean, message: () -> String) {
    checks++
    if (!condition) throw AssertionError(message())
}

private fun <T> expectEqual(expected: T, actual: T, what: String) =
    expect(expected == actual) { "$what: expected <$expected>, got <$actual>" }

/** Runs [block] and returns the exception of type [E] it throws; fails if it throws none. */
private inline fun <reified E : Throwable> expectThrows(what: String, block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) {
            checks++
            return e
        }
        throw AssertionError("$what: expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("$what: expected ${E::class.simpleName}, nothing was thrown")
}

private class Recorder : ChangeListener {
    val calls: MutableList<List<String>> = Collections.synchronizedList(mutableListOf())

    override fun onChange(docIds: List<String>) {
        calls.add(docIds)
    }
}

private class ProgressRecorder : ProgressListener {
    val calls: MutableList<SyncProgress> = Collections.synchronizedList(mutableListOf())

    override fun onProgress(progress: SyncProgress) {
        calls.add(progress)
    }
}

private fun observation(text: String) = NewNote(kind = NoteKind.OBSERVATION, text = text)

/** The key the test's stores are encrypted with (an app keeps its own in the Android Keystore). */
private val STORE_KEY = ByteArray(32) { it.toByte() }

/** Every file of the store at [path], with its bytes (not SQLite's shared-memory index). */
private fun storeFiles(path: Path): Map<String, List<Byte>> =
    Files.list(path.parent).use { files ->
        files.filter { it.fileName.toString().startsWith(path.fileName.toString()) }
            .filter { !it.toString().endsWith("-shm") }
            .toList()
            .associate { it.toString() to Files.readAllBytes(it).toList() }
    }

private fun atRest(dir: Path) {
    val path = dir.resolve("at-rest.sqlite")
    expectEqual(StoreState.ABSENT, storeState(path.toString()), "state before")
    val key = newStoreKey()
    expectEqual(32, key.size, "key size")
    val case = Device.open(path.toString(), key).use { d ->
        expect(d.isEncrypted()) { "encrypted" }
        val case = d.createCase(NewCase(subject = "Familie Oudeweg"))
        d.addNote(case, observation("De deurwaarder kwam dinsdag."))
        for ((name, bytes) in storeFiles(path)) {
            val text = String(bytes.toByteArray(), Charsets.ISO_8859_1)
            expect(!text.contains("deurwaarder") && !text.contains("Oudeweg") && !text.contains(case)) {
                "$name holds the day's words"
            }
        }
        case
    }
    expectEqual(StoreState.ENCRYPTED, storeState(path.toString()), "state after")
    val before = storeFiles(path)
    expectThrows<NabijException.WrongKey>("wrong key") { Device.open(path.toString(), newStoreKey()) }
    expectThrows<NabijException.WrongKey>("no key") { Device.openUnencrypted(path.toString()) }
    expectEqual(before, storeFiles(path), "files after refused opens")
    expectThrows<NabijException.InvalidInput>("short key") { Device.open(path.toString(), ByteArray(8)) }
    val newKey = newStoreKey()
    Device.open(path.toString(), key).use { d ->
        expectEqual("Familie Oudeweg", d.case(case).subject, "subject")
        d.rekey(newKey)
        d.addNote(case, observation("Na de nieuwe sleutel."))
    }
    expectThrows<NabijException.WrongKey>("old key after rekey") { Device.open(path.toString(), key) }
    Device.open(path.toString(), newKey).use { d ->
        expectEqual(2, d.caseTimeline(case).size, "notes under the new key")
    }

    // A store made before encryption at rest is encrypted in place.
    val old = dir.resolve("old.sqlite")
    val oldCase = Device.openUnencrypted(old.toString()).use { d ->
        d.createCase(NewCase(subject = "Familie Zandvoort"))
    }
    expectEqual(StoreState.PLAIN, storeState(old.toString()), "plain before")
    encryptStore(old.toString(), key)
    expectEqual(StoreState.ENCRYPTED, storeState(old.toString()), "encrypted after")
    Device.open(old.toString(), key).use { d ->
        expectEqual("Familie Zandvoort", d.case(oldCase).subject, "migrated subject")
        // Erasure: a reason is required; then the case is gone from lists and search.
        expectThrows<NabijException.InvalidInput>("erase without a reason") { d.erase(oldCase, " ") }
        d.erase(oldCase, "De cliënt vroeg erom")
        expectThrows<NabijException.NotFound>("erased case") { d.case(oldCase) }
        expectEqual(0, d.listCases(CaseFilter()).size, "cases after erasure")
    }
}

private fun scenario(dir: Path) {
    Device.open(dir.resolve("a.sqlite").toString(), STORE_KEY).use { a ->
        Device.open(dir.resolve("b.sqlite").toString(), STORE_KEY).use { b ->
            a.setDisplayName("Anna")
            b.setDisplayName("Bram")
            expectEqual("Anna", a.displayName(), "display name")
            expect(a.deviceKey() != b.deviceKey()) { "two devices, two keys" }

            // Listener.
            val recorder = Recorder()
            val subscription = a.subscribe(recorder)
            expect(subscription.isActive()) { "subscription active" }

            // Create a case, add and edit a note.
            val case = a.createCase(NewCase(subject = "Familie K.", tags = listOf("Wonen")))
            expectEqual(listOf(listOf(case)), recorder.calls.toList(), "listener after create")
            val read = a.case(case)
            expectEqual("Familie K.", read.subject, "subject")
            expectEqual(listOf("wonen"), read.tags, "tags")
            expectEqual(CaseStatus.OPEN, read.status, "status")
            expectEqual("Anna", read.createdBy.name, "author")

            val note = a.addNote(case, observation("Moeder wil hulp bij de huurachterstand."))
            val edited = a.editNote(case, note, "Moeder wil hulp bij de huurachterstand en school.")
            expectEqual("Moeder wil hulp bij de huurachterstand en school.", edited, "edited text")
            expectEqual(edited, a.note(case, note).text, "note after edit")
            expectEqual(3, recorder.calls.size, "listener after note and edit")
            val agreement = a.addCaseItem(case, CaseItem.Agreement("Bel de corporatie", "Anna", "2024-04-01"))
            a.setCaseAgreementDone(case, agreement, true)
            expect(a.case(case).agreements.single().done) { "agreement done" }

            // Queries.
            val other = a.createCase(NewCase(subject = "Meneer J."))
            a.updateCase(other, CaseUpdate(status = CaseStatus.CLOSED))
            expectEqual(setOf(case, other), a.listCases(CaseFilter()).map { it.id }.toSet(), "all cases")
            expectEqual(listOf(case), a.listCases(CaseFilter(status = CaseStatus.OPEN)).map { it.id }, "open cases")
            expectEqual(listOf(case), a.listCases(CaseFilter(tag = "wonen")).map { it.id }, "tagged cases")
            expectEqual(1u, a.listCases(CaseFilter(tag = "wonen")).single().noteCount, "note count")
            expectEqual(listOf(note), a.caseTimeline(case).map { it.id }, "timeline")
            val lp = a.createLearningPoint(NewLearningPoint(title = "Vroeg signaleren", cases = listOf(case)))
            expectEqual(listOf(lp), a.learningPointsCiting(case).map { it.id }, "learning points citing")
            val meeting = a.createMeeting(NewMeeting(date = "2024-05-01", agenda = listOf(case, other)))
            expectEqual(listOf(case, other), a.meetingContents(meeting).agenda.map { it.id }, "meeting agenda")

            // Search with ranked, marked snippets.
            val hits = a.search("huurachter")
            expect(hits.isNotEmpty()) { "search finds the note" }
            val hit = hits.first()
            expectEqual(HitKind.NOTE, hit.kind, "hit kind")
            expectEqual(note, hit.noteId, "hit note")
            expect(hit.snippet.contains("[huurachterstand]")) { "snippet marks the match: ${hit.snippet}" }
            expectEqual(1, a.search("huurachterstand", 1u).size, "search limit")

            // Merge between two devices, with concurrent edits of the same note. A device takes
            // changes only from devices of a network the document is shared with.
            val team = a.createNetwork("Team")
            b.join(a.inviteFromCard(team, b.deviceCard()))
            b.mergeDocument(a.exportDocument(team))
            a.updateCase(case, CaseUpdate(shareWith = listOf(team)))
            val first = b.mergeDocument(a.exportDocument(case))
            expectEqual(DocKind.CASE, first.kind, "merged kind")
            expect(first.changed) { "first merge changes b" }
            a.editNote(case, note, "Maandag: moeder wil hulp bij de huurachterstand en school.")
            b.editNote(case, note, "Moeder wil hulp bij de huurachterstand en school. Oma helpt.")
            val fromA = a.exportDocument(case)
            val fromB = b.exportDocument(case)
            b.mergeDocument(fromA)
            a.mergeDocument(fromB)
            val textA = a.note(case, note).text
            val textB = b.note(case, note).text
            expectEqual(textA, textB, "texts after exchange")
            expect(textA.contains("Maandag:") && textA.contains("Oma helpt.")) { "both edits kept: $textA" }
            expectEqual(a.heads(case), b.heads(case), "heads after exchange")

            // Errors.
            expectThrows<NabijException.InvalidInput>("empty subject") { a.createCase(NewCase(subject = "  ")) }
            expectThrows<NabijException.InvalidInput>("malformed id") { a.case("not an id") }
            val elsewhere = b.createCase(NewCase(subject = "Alleen op b"))
            val notFound = expectThrows<NabijException.NotFound>("unknown id") { a.case(elsewhere) }
            expect(notFound.message!!.contains("not found")) { "message: ${notFound.message}" }
            expectThrows<NabijException.InvalidInput>("garbage merge") {
                a.mergeDocument("garbage".toByteArray())
            }
            val text = dir.resolve("notes.txt")
            Files.writeString(text, "boodschappenlijst")
            expectThrows<NabijException.Storage>("non-SQLite file") { Device.open(text.toString(), STORE_KEY) }
            // All of them are NabijException.
            expectThrows<NabijException>("base class") { a.case("") }

            // Cancelling the subscription stops the calls.
            val before = recorder.calls.size
            expect(before > 3) { "listener saw the later writes and merge" }
            subscription.cancel()
            expect(!subscription.isActive()) { "cancelled" }
            a.addNote(case, observation("Na het opzeggen."))
            expectEqual(before, recorder.calls.size, "no calls after cancel")

            // close() ends a subscription too (Kotlin's AutoCloseable).
            val second = Recorder()
            a.subscribe(second).use { a.addNote(case, observation("Met close.")) }
            a.addNote(case, observation("Na close."))
            expectEqual(1, second.calls.size, "calls until close")

            expectEqual(emptyList<String>(), a.checkIntegrity(), "integrity")
        }
    }
}

/** Signed membership: roles, NotAllowed for a member, and removing a lost phone. */
private fun membership(dir: Path) {
    Device.open(dir.resolve("roles-a.sqlite").toString(), STORE_KEY).use { a ->
        Device.open(dir.resolve("roles-b.sqlite").toString(), STORE_KEY).use { b ->
            Device.open(dir.resolve("roles-phone.sqlite").toString(), STORE_KEY).use { phone ->
                a.setDisplayName("Anouk")
                b.setDisplayName("Bram")
                val net = a.createNetwork("Wijknetwerk West")
                a.addMemberFromCard(net, b.deviceCard())
                // Bram's second phone, on his member.
                a.addMember(net, b.memberId(), "Bram", phone.deviceKey())
                b.mergeDocument(a.exportDocument(net))
                val roles = { d: Device -> d.network(net).members.associate { it.name to it.role } }
                expectEqual(mapOf("Anouk" to Role.ADMIN, "Bram" to Role.MEMBER), roles(a), "roles")
                expectEqual(roles(a), roles(b), "roles on the member's device")

                // A member may not change who is in the network; nothing is written.
                val heads = b.heads(net)
                val refused = expectThrows<NabijException.NotAllowed>("member adds") {
                    b.addMember(net, b.memberId(), "Bram", phone.deviceKey())
                }
                expect(refused.message!!.contains("only an admin")) { "message: ${refused.message}" }
                expectThrows<NabijException.NotAllowed>("member promotes") { b.setRole(net, b.memberId(), Role.ADMIN) }
                expectThrows<NabijException.NotAllowed>("member removes") {
                    b.removeDevice(net, a.deviceKey(), RemovalReason.COMPROMISED)
                }
                expectEqual(heads, b.heads(net), "heads after refused calls")

                // The admin removes the lost phone; Bram stays with his other device.
                a.removeDevice(net, phone.deviceKey(), RemovalReason.LOST)
                val n = a.network(net)
                expectEqual(listOf(RemovedDevice(phone.deviceKey(), RemovalReason.LOST)), n.removed, "removed")
                expectEqual(listOf(b.deviceKey()), n.members.single { it.name == "Bram" }.devices, "Bram's devices")
                expectThrows<NabijException.InvalidInput>("malformed device key") {
                    a.removeDevice(net, "not a key", RemovalReason.LOST)
                }
                b.mergeDocument(a.exportDocument(net))
                expectEqual(n, b.network(net), "the removal travels with the document")

                // Promoted, Bram may remove a member.
                a.setRole(net, b.memberId(), Role.ADMIN)
                b.mergeDocument(a.exportDocument(net))
                b.removeMember(net, a.memberId(), RemovalReason.LEFT)
                val after = b.network(net)
                expectEqual(listOf("Bram"), after.members.map { it.name }, "members after removal")
                expectEqual(Role.ADMIN, after.members.single().role, "Bram's role")
                expect(after.removed.any { it.device == a.deviceKey() && it.reason == RemovalReason.LEFT }) {
                    "Anouk's device removed with her reason: ${after.removed}"
                }
            }
        }
    }
}

/** Meeting sync over loopback QUIC: suspend functions, a progress listener, errors. */
private fun meetingSync(dir: Path) = runBlocking {
    withTimeout(60_000) {
        Device.open(dir.resolve("sync-a.sqlite").toString(), STORE_KEY).use { a ->
            Device.open(dir.resolve("sync-b.sqlite").toString(), STORE_KEY).use { b ->
                b.setDisplayName("Bram")
                val card = b.deviceCard()
                expectEqual("Bram", readDeviceCard(card).name, "card name")
                val net = a.createNetwork("Wijknetwerk Noord")
                val invitation = a.inviteFromCard(net, card)
                expectEqual("Wijknetwerk Noord", b.readInvitation(invitation).networkName, "invitation")
                b.join(invitation)
                expectEqual(1, b.pendingInvitations().size, "waiting for the network")
                val case = a.createCase(NewCase(subject = "Familie K.", networks = listOf(net)))
                a.addNote(case, observation("Moeder wil hulp bij de administratie."))

                a.listen(bind = "127.0.0.1:0", networkId = net).use { listener ->
                    val progress = ProgressRecorder()
                    val report = b.syncWith(listener.ticket(), progress)
                    expectEqual(a.deviceKey(), report.peer, "report peer")
                    expect(report.documentsReceived >= 2u) { "roster and case received: $report" }
                    expect(progress.calls.isNotEmpty()) { "progress reported" }
                    expectEqual(listOf("Moeder wil hulp bij de administratie."), b.caseTimeline(case).map { it.text }, "synced notes")
                    expectEqual(0, b.pendingInvitations().size, "the network arrived")

                    b.addNote(case, observation("Bram belt morgen."))
                    val back = b.syncWith(listener.ticket())
                    expect(back.documentsSent >= 1u) { "note sent back: $back" }
                    expectEqual(2, a.caseTimeline(case).size, "A has B's note")

                    expectThrows<NabijException.InvalidInput>("garbage ticket") { b.syncWith("not a ticket") }

                    // Consent withdrawn: only the case's worker (or an admin) may; B's copy
                    // goes at the next sync, A keeps the case, and it cannot be shared again
                    // until consent is given again.
                    val withdrawn = CaseUpdate(consent = Consent(ConsentStatus.WITHDRAWN, "Wijknetwerk Noord", "2026-11-30"))
                    expectThrows<NabijException.NotAllowed>("a colleague withdraws") { b.updateCase(case, withdrawn) }
                    a.updateCase(case, withdrawn)
                    expectEqual(emptyList<String>(), a.case(case).networks, "unshared")
                    expect(a.history(case).last().summary.contains("consent")) { "consent in the history" }
                    expectThrows<NabijException.NotAllowed>("shared while withdrawn") {
                        a.updateCase(case, CaseUpdate(shareWith = listOf(net)))
                    }
                    b.syncWith(listener.ticket())
                    expectThrows<NabijException.NotFound>("the colleague's copy") { b.case(case) }
                    expectEqual(0, b.search("administratie", 10u).size, "nothing found")
                    expectEqual("Familie K.", a.case(case).subject, "the worker keeps it")

                    // B's phone is lost: removed, it meets A once more, is handed its removal,
                    // and wipes the network.
                    a.removeDevice(net, b.deviceKey(), RemovalReason.LOST)
                    val wiped = b.syncWith(listener.ticket())
                    expectEqual(0uL, wiped.documentsReceived, "nothing more for a removed phone")
                    expectEqual(0, b.listNetworks().size, "the network wiped")
                    expectEqual(0, b.listCases(CaseFilter()).size, "its cases wiped")
                    listener.stop()
                    expect(!listener.isListening()) { "stopped" }
                }
            }
        }
    }
}

/** Relay sync through a real relay process ($NABIJ_RELAY_BIN): two devices that never meet. */
private fun relaySync(dir: Path) = runBlocking {
    val binary = System.getenv("NABIJ_RELAY_BIN") ?: error("NABIJ_RELAY_BIN is not set")
    val relay = ProcessBuilder(binary, "--listen", "127.0.0.1:0", "--data-dir", dir.resolve("relay").toString())
        .redirectError(dir.resolve("relay.log").toFile())
        .start()
    try {
        val words = relay.inputStream.bufferedReader().readLine().split(" ")
        expectEqual(listOf("nabij", "relay", "listening"), words.take(3), "relay started")
        val (address, key) = words[4] to words[6]
        withTimeout(60_000) {
            Device.open(dir.resolve("relay-a.sqlite").toString(), STORE_KEY).use { a ->
                Device.open(dir.resolve("relay-b.sqlite").toString(), STORE_KEY).use { b ->
                    val net = a.createNetwork("Wijknetwerk Zuid")
                    b.join(a.inviteFromCard(net, b.deviceCard()))
                    val case = a.createCase(NewCase(subject = "Familie D.", networks = listOf(net)))
                    a.addNote(case, observation("Eerste huisbezoek."))
                    val pushed = a.syncWithRelay(address, key)
                    expectEqual(2uL, pushed.blobsPushed, "network and case pushed")
                    val pulled = b.syncWithRelay(address, key, ProgressRecorder())
                    expectEqual(2uL, pulled.documentsChanged, "B received both")
                    expectEqual(listOf("Eerste huisbezoek."), b.caseTimeline(case).map { it.text }, "relayed note")
                    expectThrows<NabijException.InvalidInput>("bad relay key") { b.syncWithRelay(address, "nabijrelay1x") }
                }
            }
        }
    } finally {
        relay.destroy()
        relay.waitFor()
    }
}

fun main() {
    val dir = Files.createTempDirectory("nabij-kotlin-test")
    try {
        scenario(dir)
        membership(dir)
        meetingSync(dir)
        relaySync(dir)
        atRest(dir)
    } finally {
        dir.toFile().deleteRecursively()
    }
    println("Kotlin binding test: OK ($checks checks)")
}
