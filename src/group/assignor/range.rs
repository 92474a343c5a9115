//! `range`: per topic, contiguous ranges of partitions over the members subscribed to it.

use super::{Part, Problem};

pub(super) fn assign(problem: &Problem<'_>) -> Vec<Vec<Part>> {
    let mut out = vec![Vec::new(); problem.members.len()];
    for t in 0..problem.topics.len() {
        let consumers: Vec<usize> = (0..problem.members.len())
            .filter(|&m| problem.subscribes(m, t))
            .collect();
        if consumers.is_empty() {
            continue;
        }
        let parts = problem.topic_parts(t);
        let per_consumer = parts.len() / consumers.len();
        let with_extra = parts.len() % consumers.len();
        let mut next = parts.start;
        for (i, &m) in consumers.iter().enumerate() {
            let len = per_consumer + usize::from(i < with_extra);
            if let Some(list) = out.get_mut(m) {
                list.extend(next..next + len);
            }
            next += len;
        }
    }
    out
}
