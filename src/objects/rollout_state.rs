//! Where a Deployment's rollout stands, by the rules `kubectl rollout
//! status` uses, computed from the Deployment's status alone: `status`
//! judges a snapshot with it, `cluster::rollout` waits on it.

use k8s_openapi::api::apps::v1::Deployment;

use crate::terminal::wording::count;

/// Where a Deployment's rollout stands, computed from its status alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Still going; the text says how far.
    InProgress(String),
    /// Every replica updated and available, no old replica left.
    Complete { ready: i32 },
    /// The Deployment controller gave up (progress deadline exceeded).
    Failed(String),
}

/// The rollout state of `deployment`, by the rules `kubectl rollout status` uses.
pub fn rollout_state(deployment: &Deployment) -> RolloutState {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return RolloutState::InProgress("waiting for the deployment controller".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::InProgress("waiting for the deployment controller".into());
    }
    if let Some(condition) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return RolloutState::Failed(condition.message.clone().unwrap_or_default());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        RolloutState::InProgress(format!(
            "{updated} of {} updated",
            count(desired, "replica", "replicas")
        ))
    } else if total > updated {
        RolloutState::InProgress(format!(
            "{} pending termination",
            count(total - updated, "old replica", "old replicas")
        ))
    } else if available < updated {
        RolloutState::InProgress(format!(
            "{available} of {} available",
            count(updated, "updated replica", "updated replicas")
        ))
    } else {
        RolloutState::Complete { ready: available }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn complete_when_all_replicas_updated_and_available() {
        let d = deployment(json!({
            "metadata": {"generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert_eq!(rollout_state(&d), RolloutState::Complete { ready: 2 });
    }

    #[test]
    fn in_progress_until_controller_observes_the_change() {
        let d = deployment(json!({
            "metadata": {"generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert!(matches!(rollout_state(&d), RolloutState::InProgress(_)));
    }

    #[test]
    fn in_progress_while_old_replicas_remain() {
        let d = deployment(json!({
            "metadata": {"generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert_eq!(
            rollout_state(&d),
            RolloutState::InProgress("1 old replica pending termination".into())
        );
    }

    #[test]
    fn failed_when_progress_deadline_exceeded() {
        let d = deployment(json!({
            "metadata": {"generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 1,
                       "conditions": [{"type": "Progressing", "status": "False",
                                       "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}
        }));
        assert_eq!(rollout_state(&d), RolloutState::Failed("too slow".into()));
    }
}
