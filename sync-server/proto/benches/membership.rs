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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
