use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

type Tp = (String, i32);

fn sub(topics: &[&str]) -> ConsumerProtocolSubscription {
    ConsumerProtocolSubscription::new(topics.iter().map(|t| t.to_string()).collect())
}

fn flat(list: &[TopicPartitions]) -> Vec<Tp> {
    list.iter()
        .flat_map(|tp| tp.partitions.iter().map(|&p| (tp.topic.clone(), p)))
        .collect()
}

fn counts(spec: &[(&str, u32)]) -> BTreeMap<String, u32> {
    spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

#[test]
fn range_matches_kafkas_documented_example() {
    let topics = counts(&[("t0", 3), ("t1", 3)]);
    let members = [
        AssignorMember::new("C1", sub(&["t0", "t1"])),
        AssignorMember::new("C0", sub(&["t0", "t1"])),
    ];
    let a = Assignor::Range.assign(&topics, &members).unwrap();
    assert_eq!(
        flat(&a["C0"]),
        [
            ("t0".into(), 0),
            ("t0".into(), 1),
            ("t1".into(), 0),
            ("t1".into(), 1)
        ]
    );
    assert_eq!(flat(&a["C1"]), [("t0".into(), 2), ("t1".into(), 2)]);
}

#[test]
fn roundrobin_matches_kafkas_documented_example() {
    let topics = counts(&[("t0", 3), ("t1", 3)]);
    let members = [
        AssignorMember::new("C0", sub(&["t0", "t1"])),
        AssignorMember::new("C1", sub(&["t0", "t1"])),
    ];
    let a = Assignor::RoundRobin.assign(&topics, &members).unwrap();
    assert_eq!(
        flat(&a["C0"]),
        [("t0".into(), 0), ("t0".into(), 2), ("t1".into(), 1)]
    );
    assert_eq!(
        flat(&a["C1"]),
        [("t0".into(), 1), ("t1".into(), 0), ("t1".into(), 2)]
    );
    // Three consumers, uneven subscriptions (Kafka's second example): C0 takes t0,
    // C1 t0 and t1, C2 all three topics of 1, 2 and 3 partitions.
    let topics = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
    let members = [
        AssignorMember::new("C0", sub(&["t0"])),
        AssignorMember::new("C1", sub(&["t0", "t1"])),
        AssignorMember::new("C2", sub(&["t0", "t1", "t2"])),
    ];
    let a = Assignor::RoundRobin.assign(&topics, &members).unwrap();
    assert_eq!(flat(&a["C0"]), [("t0".into(), 0)]);
    assert_eq!(flat(&a["C1"]), [("t1".into(), 0)]);
    assert_eq!(
        flat(&a["C2"]),
        [
            ("t1".into(), 1),
            ("t2".into(), 0),
            ("t2".into(), 1),
            ("t2".into(), 2)
        ]
    );
}

#[test]
fn static_members_sort_first_and_strings_compare_as_java() {
    let topics = counts(&[("t", 3)]);
    let mut s = AssignorMember::new("zzz", sub(&["t"]));
    s.group_instance_id = Some("instance".into());
    let members = [AssignorMember::new("aaa", sub(&["t"])), s];
    let a = Assignor::Range.assign(&topics, &members).unwrap();
    assert_eq!(a["zzz"][0].partitions, [0, 1]);
    assert_eq!(a["aaa"][0].partitions, [2]);
    // U+FF5E sorts after U+1F600 in UTF-16 (surrogates are 0xD83D...) but before in UTF-8.
    assert_eq!(java_string_cmp("\u{ff5e}", "\u{1f600}"), Ordering::Greater);
    assert!("\u{ff5e}" < "\u{1f600}");
}

#[test]
fn names_round_trip_and_duplicates_are_refused() {
    for a in Assignor::ALL {
        assert_eq!(Assignor::from_name(a.name()), Some(a));
    }
    assert_eq!(
        Assignor::from_name("cooperative-sticky"),
        Some(Assignor::CooperativeSticky)
    );
    assert_eq!(Assignor::from_name("uniform"), None);
    let members = [
        AssignorMember::new("x", sub(&["t"])),
        AssignorMember::new("x", sub(&["t"])),
    ];
    assert!(Assignor::Range
        .assign(&counts(&[("t", 1)]), &members)
        .is_err());
}

#[test]
fn topics_without_metadata_are_skipped_and_members_get_empty_entries() {
    let members = [
        AssignorMember::new("a", sub(&["known", "unknown"])),
        AssignorMember::new("b", sub(&["unknown"])),
    ];
    for assignor in Assignor::ALL {
        let a = assignor.assign(&counts(&[("known", 2)]), &members).unwrap();
        assert_eq!(flat(&a["a"]).len(), 2, "{assignor:?}");
        assert!(a["b"].is_empty());
    }
}

#[test]
fn sticky_user_data_versions() {
    let v1 = StickyAssignorUserData {
        previous_assignment: vec![TopicPartitions::new("t", vec![1, 2])],
        generation: Some(7),
    };
    let bytes = v1.encode().unwrap();
    assert_eq!(StickyAssignorUserData::decode(&bytes).unwrap(), v1);
    let v0 = StickyAssignorUserData {
        generation: None,
        ..v1
    };
    assert_eq!(
        StickyAssignorUserData::decode(&v0.encode().unwrap()).unwrap(),
        v0
    );
    assert!(StickyAssignorUserData::decode(&[0, 0, 0, 9]).is_err());
    assert_eq!(cooperative_sticky_user_data(5), [0, 0, 0, 5]);
}

/// A group and its topics, drawn at random.
#[derive(Debug, Clone)]
struct Case {
    topics: BTreeMap<String, u32>,
    /// Per member: indexes into `topics` it subscribes to.
    subscriptions: Vec<Vec<usize>>,
}

fn topic_name(i: usize) -> String {
    format!("topic-{i}")
}

fn uniform_case() -> impl Strategy<Value = Case> {
    (proptest::collection::vec(0u32..12, 1..4), 1usize..9).prop_map(|(sizes, members)| {
        let topics: BTreeMap<String, u32> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| (topic_name(i), *n))
            .collect();
        Case {
            subscriptions: vec![(0..sizes.len()).collect(); members],
            topics,
        }
    })
}

fn mixed_case() -> impl Strategy<Value = Case> {
    proptest::collection::vec(0u32..10, 1..5).prop_flat_map(|sizes| {
        let n = sizes.len();
        let subs = proptest::collection::vec(
            proptest::collection::btree_set(0..n, 1..=n).prop_map(|s| s.into_iter().collect()),
            1..8,
        );
        (Just(sizes), subs).prop_map(|(sizes, subscriptions)| Case {
            topics: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| (topic_name(i), *n))
                .collect(),
            subscriptions,
        })
    })
}

fn member_id(i: usize) -> String {
    format!("member-{i:02}")
}

fn members_of(case: &Case) -> Vec<AssignorMember> {
    case.subscriptions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let subscription =
                ConsumerProtocolSubscription::new(s.iter().map(|t| topic_name(*t)).collect());
            AssignorMember::new(member_id(i), subscription)
        })
        .collect()
}

/// Every partition of a subscribed topic goes to exactly one member subscribed to it.
fn check_complete(case: &Case, members: &[AssignorMember], a: &Assignments) {
    let mut seen = BTreeSet::new();
    for m in members {
        for (t, p) in flat(&a[&m.member_id]) {
            assert!(
                m.subscription.topics.contains(&t),
                "{} got {t} unsubscribed",
                m.member_id
            );
            assert!(seen.insert((t.clone(), p)), "{t}-{p} assigned twice");
        }
    }
    let expected: usize = case
        .topics
        .iter()
        .enumerate()
        .filter(|(i, _)| case.subscriptions.iter().any(|s| s.contains(i)))
        .map(|(_, (_, n))| *n as usize)
        .sum();
    assert_eq!(seen.len(), expected);
}

fn sizes(a: &Assignments) -> Vec<usize> {
    a.values().map(|l| flat(l).len()).collect()
}

/// Kafka's definition: no member could take a partition from one with two more.
fn check_balanced(members: &[AssignorMember], a: &Assignments) {
    for lo in members {
        let lo_len = flat(&a[&lo.member_id]).len();
        for hi in members {
            let hi_parts = flat(&a[&hi.member_id]);
            if hi_parts.len() >= lo_len + 2 {
                assert!(
                    hi_parts
                        .iter()
                        .all(|(t, _)| !lo.subscription.topics.contains(t)),
                    "{} ({lo_len}) could take from {} ({})",
                    lo.member_id,
                    hi.member_id,
                    hi_parts.len()
                );
            }
        }
    }
}

/// Members' subscriptions for a sticky rebalance, each carrying its previous partitions.
fn with_previous(
    members: &mut [AssignorMember],
    previous: &Assignments,
    generation: i32,
    cooperative: bool,
) {
    for m in members.iter_mut() {
        let owned = previous.get(&m.member_id).cloned().unwrap_or_default();
        if cooperative {
            m.subscription.owned_partitions = owned;
            m.subscription.generation_id = generation;
        } else {
            let data = StickyAssignorUserData {
                previous_assignment: owned,
                generation: Some(generation),
            };
            m.subscription.user_data = Some(data.encode().unwrap());
        }
    }
}

/// The fewest partitions any balanced assignment must move, for uniform subscriptions.
fn minimum_moves(total: usize, members: &[AssignorMember], previous: &Assignments) -> usize {
    let c = members.len();
    let (quota, extra) = (total / c, total % c);
    let owned: Vec<usize> = members
        .iter()
        .map(|m| previous.get(&m.member_id).map_or(0, |l| flat(l).len()))
        .collect();
    let still_owned: usize = owned.iter().sum();
    let kept: usize = owned.iter().map(|&o| o.min(quota)).sum::<usize>()
        + extra.min(owned.iter().filter(|&&o| o > quota).count());
    still_owned - kept
}

fn moved(previous: &Assignments, next: &Assignments) -> usize {
    let mut n = 0;
    for (member, list) in previous {
        let Some(now) = next.get(member) else {
            continue;
        };
        let now: BTreeSet<Tp> = flat(now).into_iter().collect();
        n += flat(list).iter().filter(|tp| !now.contains(*tp)).count();
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn uniform_subscriptions_are_balanced(case in uniform_case()) {
        let members = members_of(&case);
        for assignor in [Assignor::RoundRobin, Assignor::Sticky, Assignor::CooperativeSticky] {
            let a = assignor.assign(&case.topics, &members).unwrap();
            check_complete(&case, &members, &a);
            let s = sizes(&a);
            let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
            prop_assert!(max - min <= 1, "{assignor:?}: {s:?}");
        }
        // Range balances each topic on its own.
        let a = Assignor::Range.assign(&case.topics, &members).unwrap();
        check_complete(&case, &members, &a);
        for topic in case.topics.keys() {
            let per: Vec<usize> = a.values().map(|l| flat(l).iter().filter(|(t, _)| t == topic).count()).collect();
            prop_assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn mixed_subscriptions_are_complete_and_sticky_is_balanced(case in mixed_case()) {
        let members = members_of(&case);
        for assignor in Assignor::ALL {
            let a = assignor.assign(&case.topics, &members).unwrap();
            check_complete(&case, &members, &a);
        }
        let a = Assignor::Sticky.assign(&case.topics, &members).unwrap();
        check_balanced(&members, &a);
    }

    #[test]
    fn sticky_moves_the_minimum(
        case in uniform_case(),
        leave in proptest::collection::btree_set(0usize..9, 0..4),
        join in 0usize..4,
        grow in 0u32..4,
    ) {
        let members = members_of(&case);
        let previous = Assignor::Sticky.assign(&case.topics, &members).unwrap();
        // Some members leave, some join, the first topic gains partitions.
        let mut next_members: Vec<AssignorMember> = members
            .iter()
            .enumerate()
            .filter(|(i, _)| !leave.contains(i) || leave.len() >= members.len())
            .map(|(_, m)| m.clone())
            .collect();
        let all: Vec<String> = case.topics.keys().cloned().collect();
        for j in 0..join {
            next_members.push(AssignorMember::new(format!("new-{j}"), ConsumerProtocolSubscription::new(all.clone())));
        }
        let mut topics = case.topics.clone();
        if let Some(n) = topics.values_mut().next() {
            *n += grow;
        }
        with_previous(&mut next_members, &previous, 3, false);
        let next = Assignor::Sticky.assign(&topics, &next_members).unwrap();
        let next_case = Case { topics: topics.clone(), subscriptions: vec![(0..all.len()).collect(); next_members.len()] };
        check_complete(&next_case, &next_members, &next);
        let s = sizes(&next);
        prop_assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        let total: usize = topics.values().map(|n| *n as usize).sum();
        let present: Assignments = previous.iter().filter(|(m, _)| next.contains_key(*m)).map(|(m, l)| (m.clone(), l.clone())).collect();
        prop_assert_eq!(moved(&present, &next), minimum_moves(total, &next_members, &present));
    }

    #[test]
    fn cooperative_sticky_never_assigns_what_another_member_still_owns(
        case in mixed_case(),
        claims in proptest::collection::vec((0usize..8, 0usize..5, 0i32..10, 0i32..3), 0..40),
    ) {
        let mut members = members_of(&case);
        // Random, possibly conflicting and stale, ownership claims.
        for (m, t, p, generation) in claims {
            let Some(member) = members.get_mut(m % case.subscriptions.len()) else { continue };
            let topic = topic_name(t % case.topics.len());
            member.subscription.owned_partitions.push(TopicPartitions::new(topic, vec![p]));
            member.subscription.generation_id = generation;
        }
        let a = Assignor::CooperativeSticky.assign(&case.topics, &members).unwrap();
        for m in &members {
            for tp in flat(&a[&m.member_id]) {
                for other in &members {
                    if other.member_id != m.member_id {
                        prop_assert!(!flat(&other.subscription.owned_partitions).contains(&tp),
                            "{:?} given to {} while {} owns it", tp, m.member_id, other.member_id);
                    }
                }
            }
        }
    }

    #[test]
    fn cooperative_sticky_converges_in_two_rebalances(case in uniform_case(), join in 1usize..4) {
        let mut members = members_of(&case);
        let first = Assignor::CooperativeSticky.assign(&case.topics, &members).unwrap();
        with_previous(&mut members, &first, 1, true);
        let all: Vec<String> = case.topics.keys().cloned().collect();
        for j in 0..join {
            members.push(AssignorMember::new(format!("new-{j}"), ConsumerProtocolSubscription::new(all.clone())));
        }
        // Round one revokes what moves; members rejoin owning what they kept.
        let round_one = Assignor::CooperativeSticky.assign(&case.topics, &members).unwrap();
        for m in &members {
            let owned: BTreeSet<Tp> = flat(&m.subscription.owned_partitions).into_iter().collect();
            let now: BTreeSet<Tp> = flat(&round_one[&m.member_id]).into_iter().collect();
            // Nothing new arrives for a member while anything it owned moves away... only
            // unowned partitions can be new.
            for tp in now.difference(&owned) {
                prop_assert!(members.iter().all(|o| !flat(&o.subscription.owned_partitions).contains(tp)));
            }
        }
        with_previous(&mut members, &round_one, 2, true);
        let round_two = Assignor::CooperativeSticky.assign(&case.topics, &members).unwrap();
        let complete_case = Case { topics: case.topics.clone(), subscriptions: vec![(0..all.len()).collect(); members.len()] };
        check_complete(&complete_case, &members, &round_two);
        let s = sizes(&round_two);
        prop_assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1, "{s:?}");
        prop_assert_eq!(moved(&round_one, &round_two), 0, "round two only adds");
    }
}
