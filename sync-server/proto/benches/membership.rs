//! How long resolving a network's signed membership takes (criterion): the relay resolves
//! what any device sends it, so the worst a stranger can send must stay cheap.
//!
//! `cargo bench -p nabij-relay-proto --bench membership`. Figures go to BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use nabij_relay_proto::{
    ids::DocId,
    membership::{self, Change, MAX_OPS, Role, SignedOp},
};

const NET: DocId = DocId::from_bytes([9; 16]);

fn genesis(k: &SigningKey) -> SignedOp {
    let c = Change::Genesis { key_commitment: [0; 32], member: [0; 16], name: "Anna".into() };
    SignedOp::sign(k, NET, &[], c).expect("sign")
}

/// The worst shape for the first rule: one chain of operations, all about one member.
fn chain(n: usize) -> (SignedOp, Vec<SignedOp>) {
    let k = SigningKey::from_bytes(&[1; 32]);
    let g = genesis(&k);
    let add = Change::AddMember { member: [2; 16], name: "Bram".into(), role: Role::Member };
    let mut ops = vec![g.clone(), SignedOp::sign(&k, NET, &[g.id()], add).expect("sign")];
    while ops.len() < n {
        let role = if ops.len() % 2 == 0 { Role::Admin } else { Role::Member };
        let parent = ops.last().expect("ops").id();
        let c = Change::SetRole { member: [2; 16], role };
        ops.push(SignedOp::sign(&k, NET, &[parent], c).expect("sign"));
    }
    (g, ops)
}

/// A large real network: 100 members with two devices each, added by two admins at once
/// (concurrent branches), and a removal on each branch.
fn network() -> (SignedOp, Vec<SignedOp>) {
    let a = SigningKey::from_bytes(&[1; 32]);
    let b = SigningKey::from_bytes(&[2; 32]);
    let g = genesis(&a);
    let mut ops = vec![g.clone()];
    let add_b = Change::AddMember { member: [1; 16], name: "Bram".into(), role: Role::Admin };
    let m = SignedOp::sign(&a, NET, &[g.id()], add_b).expect("sign");
    let dev = Change::AddDevice { member: [1; 16], device: b.verifying_key().to_bytes() };
    let d = SignedOp::sign(&a, NET, &[m.id()], dev).expect("sign");
    ops.extend([m, d.clone()]);
    let mut tips = [d.id(), d.id()];
    for n in 0..100u8 {
        let (who, by) = if n % 2 == 0 { (0, &a) } else { (1, &b) };
        let member = [n.wrapping_add(10); 16];
        let c = Change::AddMember { member, name: format!("lid {n}"), role: Role::Member };
        let op = SignedOp::sign(by, NET, &[tips[who]], c).expect("sign");
        tips[who] = op.id();
        ops.push(op);
        for d in 0..2u8 {
            let device = SigningKey::from_bytes(&[
                n.wrapping_add(10),
                d,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
            ]);
            let c = Change::AddDevice { member, device: device.verifying_key().to_bytes() };
            let op = SignedOp::sign(by, NET, &[tips[who]], c).expect("sign");
            tips[who] = op.id();
            ops.push(op);
        }
    }
    for (who, by) in [(0, &a), (1, &b)] {
        let c =
            Change::RemoveMember { member: [10 + who as u8; 16], reason: membership::Reason::Left };
        ops.push(SignedOp::sign(by, NET, &[tips[who]], c).expect("sign"));
    }
    (g, ops)
}

/// A member's device key, made up from a number.
fn device(n: u16) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..2].copy_from_slice(&n.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// Admins `1..=admins` (member `[i; 16]`, device `device(i)`) added one after the other by the
/// creator, after `filler` members: the tip of that chain, and the operations.
fn admins(admins: u16, filler: u16) -> (SigningKey, SignedOp, Vec<SignedOp>) {
    let a = SigningKey::from_bytes(&[1; 32]);
    let g = genesis(&a);
    let mut ops = vec![g.clone()];
    let push = |c: Change, ops: &mut Vec<SignedOp>| {
        let parent = ops.last().expect("ops").id();
        ops.push(SignedOp::sign(&a, NET, &[parent], c).expect("sign"));
    };
    for n in 0..filler {
        let mut member = [0xF0; 16];
        member[..2].copy_from_slice(&n.to_le_bytes());
        push(Change::AddMember { member, name: String::new(), role: Role::Member }, &mut ops);
    }
    for i in 1..=admins {
        let mut member = [0xA0; 16];
        member[..2].copy_from_slice(&i.to_le_bytes());
        push(Change::AddMember { member, name: String::new(), role: Role::Admin }, &mut ops);
        let device = device(i).verifying_key().to_bytes();
        push(Change::AddDevice { member, device }, &mut ops);
    }
    (a, g, ops)
}

fn member(i: u16) -> [u8; 16] {
    let mut member = [0xA0; 16];
    member[..2].copy_from_slice(&i.to_le_bytes());
    member
}

/// The most disputes an admin can make: admin 1 demotes admin 2 `k` times while admin 2,
/// concurrently, demotes admin 3 `k` times (each of the latter disputed by each of the former).
fn disputes(k: usize) -> (SignedOp, Vec<SignedOp>) {
    let (_, g, mut ops) = admins(3, 0);
    let tip = ops.last().expect("ops").id();
    for (by, whom) in [(1, 2), (2, 3)] {
        let key = device(by);
        let mut parent = tip;
        for _ in 0..k {
            let c = Change::SetRole { member: member(whom), role: Role::Member };
            let op = SignedOp::sign(&key, NET, &[parent], c).expect("sign");
            parent = op.id();
            ops.push(op);
        }
    }
    (g, ops)
}

/// A chain of disputes, each settled only once the next is: admin i demotes admin i+1, all
/// concurrently, after `filler` members (so that each round of the rule costs much).
fn dispute_chain(admins_n: u16, filler: u16) -> (SignedOp, Vec<SignedOp>) {
    let (_, g, mut ops) = admins(admins_n, filler);
    let tip = ops.last().expect("ops").id();
    for by in 1..admins_n {
        let c = Change::SetRole { member: member(by + 1), role: Role::Member };
        ops.push(SignedOp::sign(&device(by), NET, &[tip], c).expect("sign"));
    }
    (g, ops)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("membership");
    group.sample_size(10);
    for n in [1024, MAX_OPS] {
        let (g, ops) = chain(n);
        group.bench_function(format!("chain of {n} on one member"), |b| {
            b.iter(|| membership::resolve(NET, g.id(), &ops))
        });
    }
    let (g, ops) = network();
    group.bench_function(format!("100 members, 2 admins at once ({} ops)", ops.len()), |b| {
        b.iter(|| membership::resolve(NET, g.id(), &ops))
    });
    let (g, ops) = disputes(2000);
    group.bench_function(format!("2 x 2000 disputed revocations ({} ops)", ops.len()), |b| {
        b.iter(|| membership::resolve(NET, g.id(), &ops))
    });
    let (g, ops) = dispute_chain(64, 3900);
    group.bench_function(format!("a chain of 63 disputes ({} ops)", ops.len()), |b| {
        b.iter(|| membership::resolve(NET, g.id(), &ops))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
