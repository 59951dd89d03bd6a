//! A property test of the storage engine: random insert, replace, update, upsert, delete and
//! select requests, some inside transactions that roll back, on a space with a TREE primary
//! key, a non-unique TREE secondary key and a unique HASH key, checked after every step
//! against a model (a sorted map). Seeds are printed; a failure names its seed and step.

mod common;

use std::collections::BTreeMap;

use tarantula::r#box::db::{Db, Request, RequestKind};
use tarantula::r#box::mp::{Mp, s, u};
use tarantula::r#box::schema::{INDEX_ID, SPACE_ID};
use tarantula::r#box::txn::Txn;
use tarantula::error::ErrCode;

use common::Rng;

const SPACE: u32 = 512;
const KEYS: u64 = 40;

/// The model: primary key → (secondary field, unique hash field).
type Model = BTreeMap<u64, (u64, u64)>;

fn tuple(k: u64, a: u64, b: u64) -> Vec<u8> {
    Mp::Array(vec![u(k), u(a), u(b)]).to_vec()
}

fn key(values: &[u64]) -> Vec<u8> {
    Mp::Array(values.iter().map(|v| u(*v)).collect()).to_vec()
}

fn setup() -> Db {
    let mut db = Db::new("11111111-1111-1111-1111-111111111111");
    db.bootstrap("22222222-2222-2222-2222-222222222222")
        .unwrap();
    let space = Mp::Array(vec![
        u(512),
        u(1),
        s("model"),
        s("memtx"),
        u(0),
        Mp::Map(vec![]),
        Mp::Array(vec![]),
    ]);
    let parts = |field: u64| Mp::Array(vec![Mp::Array(vec![u(field), s("num")])]);
    let unique = |yes: bool| Mp::Map(vec![(s("unique"), Mp::Bool(yes))]);
    let indexes = [
        Mp::Array(vec![
            u(512),
            u(0),
            s("pk"),
            s("tree"),
            unique(true),
            parts(0),
        ]),
        Mp::Array(vec![
            u(512),
            u(1),
            s("sk"),
            s("tree"),
            unique(false),
            parts(1),
        ]),
        Mp::Array(vec![
            u(512),
            u(2),
            s("hk"),
            s("hash"),
            unique(true),
            parts(2),
        ]),
    ];
    let mut rows = vec![(SPACE_ID, space.to_vec())];
    rows.extend(indexes.iter().map(|row| (INDEX_ID, row.to_vec())));
    for (space_id, row) in rows {
        let mut request = Request::new(RequestKind::Insert, space_id);
        request.tuple = &row;
        db.execute(&mut Txn::autocommit(), &request).unwrap();
    }
    db
}

/// The contents of one index as (k, a, b) in its order.
fn scan(
    db: &Db,
    index: u32,
    iterator: u64,
    key_bytes: &[u8],
) -> Result<Vec<(u64, u64, u64)>, ErrCode> {
    let mut request = Request::new(RequestKind::Select, SPACE);
    request.index_id = index;
    request.iterator = iterator;
    request.key = key_bytes;
    let tuples = db.select(&request).map_err(|err| err.code)?;
    Ok(tuples
        .iter()
        .map(|t| {
            let fields = tarantula::r#box::mp::array_items(t.data()).unwrap();
            let n = |i: usize| tarantula::r#box::mp::read_u64(fields[i]).unwrap();
            (n(0), n(1), n(2))
        })
        .collect())
}

fn check_contents(db: &Db, model: &Model, context: &str) {
    let by_pk: Vec<(u64, u64, u64)> = model.iter().map(|(k, (a, b))| (*k, *a, *b)).collect();
    assert_eq!(
        scan(db, 0, 2, &key(&[])).unwrap(),
        by_pk,
        "pk scan, {context}"
    );
    let mut by_sk = by_pk.clone();
    by_sk.sort_by_key(|(k, a, _)| (*a, *k));
    assert_eq!(
        scan(db, 1, 2, &key(&[])).unwrap(),
        by_sk,
        "sk scan, {context}"
    );
    let mut by_hash = scan(db, 2, 2, &key(&[])).unwrap();
    by_hash.sort();
    assert_eq!(by_hash, by_pk, "hash scan, {context}");
}

/// The model's answer to a change: the new model state or the error code.
fn apply_model(model: &Model, op: &Op) -> Result<Model, ErrCode> {
    let mut next = model.clone();
    let hash_owner = |b: u64| model.iter().find(|(_, (_, hb))| *hb == b).map(|(k, _)| *k);
    match *op {
        Op::Insert(k, a, b) => {
            if model.contains_key(&k) || hash_owner(b).is_some() {
                return Err(ErrCode::TUPLE_FOUND);
            }
            next.insert(k, (a, b));
        }
        Op::Replace(k, a, b) => {
            if hash_owner(b).is_some_and(|owner| owner != k) {
                return Err(ErrCode::TUPLE_FOUND);
            }
            next.insert(k, (a, b));
        }
        Op::Update(k, a, delta) => {
            if let Some((_, b)) = model.get(&k) {
                let b = b + delta;
                if hash_owner(b).is_some_and(|owner| owner != k) {
                    return Err(ErrCode::TUPLE_FOUND);
                }
                next.insert(k, (a, b));
            }
        }
        Op::Delete(k) => {
            next.remove(&k);
        }
        Op::Upsert(..) => return Err(ErrCode::UPSERT_UNIQUE_SECONDARY_KEY),
    }
    Ok(next)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Insert(u64, u64, u64),
    Replace(u64, u64, u64),
    Update(u64, u64, u64),
    Delete(u64),
    Upsert(u64, u64, u64),
}

fn random_op(rng: &mut Rng) -> Op {
    let (k, a, b) = (rng.below(KEYS), rng.below(8), rng.below(KEYS * 2));
    match rng.below(5) {
        0 => Op::Insert(k, a, b),
        1 => Op::Replace(k, a, b),
        2 => Op::Update(k, a, rng.below(3)),
        3 => Op::Delete(k),
        _ => Op::Upsert(k, a, b),
    }
}

fn execute(db: &mut Db, txn: &mut Txn, op: &Op) -> Result<(), ErrCode> {
    let (kind, tuple_bytes, key_bytes, ops) = match *op {
        Op::Insert(k, a, b) => (RequestKind::Insert, tuple(k, a, b), vec![], vec![]),
        Op::Replace(k, a, b) => (RequestKind::Replace, tuple(k, a, b), vec![], vec![]),
        Op::Update(k, a, delta) => {
            let ops = Mp::Array(vec![
                Mp::Array(vec![s("="), u(1), u(a)]),
                Mp::Array(vec![s("+"), u(2), u(delta)]),
            ])
            .to_vec();
            (RequestKind::Update, ops, key(&[k]), vec![])
        }
        Op::Delete(k) => (RequestKind::Delete, vec![], key(&[k]), vec![]),
        Op::Upsert(k, a, b) => {
            let ops = Mp::Array(vec![Mp::Array(vec![s("="), u(1), u(a)])]).to_vec();
            (RequestKind::Upsert, tuple(k, a, b), vec![], ops)
        }
    };
    let mut request = Request::new(kind, SPACE);
    request.tuple = &tuple_bytes;
    request.key = &key_bytes;
    request.ops = &ops;
    db.execute(txn, &request)
        .map(|_| ())
        .map_err(|err| err.code)
}

/// Random selects through each index compared with the model.
fn check_select(db: &Db, model: &Model, rng: &mut Rng, context: &str) {
    let k = rng.below(KEYS);
    let iterator = [0u64, 1, 3, 4, 5, 6][rng.below(6) as usize];
    let got = scan(db, 0, iterator, &key(&[k])).unwrap();
    let rows = model.iter().map(|(key, (a, b))| (*key, *a, *b));
    let want: Vec<_> = match iterator {
        0 | 1 => rows.filter(|(key, _, _)| *key == k).collect(),
        3 => rows.filter(|(key, _, _)| *key < k).rev().collect(),
        4 => rows.filter(|(key, _, _)| *key <= k).rev().collect(),
        5 => rows.filter(|(key, _, _)| *key >= k).collect(),
        _ => rows.filter(|(key, _, _)| *key > k).collect(),
    };
    assert_eq!(got, want, "select iterator {iterator} key {k}, {context}");
    let b = rng.below(KEYS * 2);
    let by_hash = scan(db, 2, 0, &key(&[b])).unwrap();
    let want: Vec<_> = model
        .iter()
        .filter(|(_, (_, hb))| *hb == b)
        .map(|(k, (a, hb))| (*k, *a, *hb))
        .collect();
    assert_eq!(by_hash, want, "hash get {b}, {context}");
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng::new(seed);
    let mut db = setup();
    let mut model = Model::new();
    let mut step = 0;
    while step < steps {
        let in_txn = rng.below(4) == 0;
        let mut txn = if in_txn {
            Txn::begin()
        } else {
            Txn::autocommit()
        };
        let before = model.clone();
        let statements = if in_txn { 1 + rng.below(5) } else { 1 };
        for _ in 0..statements {
            let op = random_op(&mut rng);
            let context = format!("seed {seed} step {step} op {op:?}");
            let want = apply_model(&model, &op);
            let got = execute(&mut db, &mut txn, &op);
            match want {
                Ok(next) => {
                    assert_eq!(got, Ok(()), "{context}");
                    model = next;
                }
                Err(code) => assert_eq!(got, Err(code), "{context}"),
            }
            check_contents(&db, &model, &context);
            check_select(&db, &model, &mut rng, &context);
            step += 1;
        }
        if in_txn && rng.below(2) == 0 {
            db.rollback(txn);
            model = before;
            check_contents(&db, &model, &format!("seed {seed} rollback at step {step}"));
        }
    }
}

#[test]
fn random_requests_agree_with_a_sorted_map() {
    for seed in [1u64, 0x5eed, 0xdead_beef, 42, 7_777_777] {
        println!("seed {seed}");
        run(seed, 1500);
    }
}
