//! Standard Kubernetes conditions, and the helpers every status writer shares.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Finds the condition of `type_` in a list.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status (`True`, `False`, `Unknown`) of a condition, `Unknown` when absent.
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> &'a str {
    find_condition(conditions, type_).map_or("Unknown", |c| c.status.as_str())
}

/// Setting conditions without rewriting what did not change.
pub trait ConditionExt {
    /// Sets a condition. `lastTransitionTime` moves only when the status changes, so a pass
    /// that finds everything as it was writes nothing (steady state costs no API writes).
    fn set_condition(&mut self, new: Condition, now: Time);
}

impl ConditionExt for Vec<Condition> {
    fn set_condition(&mut self, mut new: Condition, now: Time) {
        match self.iter_mut().find(|c| c.type_ == new.type_) {
            Some(old) => {
                new.last_transition_time = if old.status == new.status {
                    old.last_transition_time.clone()
                } else {
                    now
                };
                *old = new;
            }
            None => {
                new.last_transition_time = now;
                self.push(new);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn cond(status: &str, reason: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t1 = Time(Timestamp::from_second(100).unwrap());
        let t2 = Time(Timestamp::from_second(200).unwrap());
        let mut list = Vec::new();
        list.set_condition(cond("False", "A"), t1.clone());
        list.set_condition(cond("False", "B"), t2.clone());
        assert_eq!(list[0].last_transition_time, t1);
        assert_eq!(list[0].reason, "B");
        list.set_condition(cond("True", "B"), t2.clone());
        assert_eq!(list[0].last_transition_time, t2);
        assert_eq!(condition_status(&list, "Ready"), "True");
        assert_eq!(condition_status(&list, "Other"), "Unknown");
    }
}
