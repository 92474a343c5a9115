//! `roundrobin`: every partition, topic by topic, dealt in turn to the members subscribed
//! to its topic; the turn carries over from one topic to the next.

use super::{Part, Problem};

pub(super) fn assign(problem: &Problem<'_>) -> Vec<Vec<Part>> {
    let members = problem.members.len();
    let mut out = vec![Vec::new(); members];
    if members == 0 {
        return out;
    }
    let mut cursor = 0usize;
    for t in 0..problem.topics.len() {
        for p in problem.topic_parts(t) {
            // The next member in turn that subscribes to the topic (one always does: the
            // problem only holds subscribed topics).
            let Some(m) = (0..members)
                .map(|k| (cursor + k) % members)
                .find(|&m| problem.subscribes(m, t))
            else {
                continue;
            };
            if let Some(list) = out.get_mut(m) {
                list.push(p);
            }
            cursor = (m + 1) % members;
        }
    }
    out
}
