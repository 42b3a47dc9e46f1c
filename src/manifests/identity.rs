//! The runbook's step 13: the IdentityMappingPolicy that maps an STS source
//! identity to the KMS targets, using the API-key secret. `mappingType` and
//! `sourceAuthority` are fixed by the runbook and not offered as options.

use crate::objects::place::{Desired, ObjectRef};
use crate::objects::schemas::{
    ApiKeyRef, IdentityMapping as Mapping, IdentityMappingPolicySpec, TargetCredentials,
};
use crate::values::crn::Crn;

pub const MAPPING_TYPE: &str = "inbound";
pub const SOURCE_AUTHORITY: &str = "ibm-cloud-iam";

pub struct IdentityMapping<'a> {
    /// Where the policy is (`owned::POLICY` in this run).
    pub place: ObjectRef,
    pub source: &'a Crn,
    pub targets: &'a [Crn],
    pub secret: &'a str,
    pub secret_key: &'a str,
}

impl IdentityMapping<'_> {
    pub fn policy(&self) -> Desired {
        let spec = IdentityMappingPolicySpec {
            identity_mapping: Mapping {
                source_identity: self.source.as_str().to_owned(),
                target_credentials: TargetCredentials {
                    api_key_ref: ApiKeyRef {
                        property_name: self.secret_key.to_owned(),
                        secret_name: self.secret.to_owned(),
                        ..ApiKeyRef::default()
                    },
                    ..TargetCredentials::default()
                },
                ..Mapping::default()
            },
            mapping_type: MAPPING_TYPE.into(),
            source_authority: SOURCE_AUTHORITY.into(),
            target_resources: self.targets.iter().map(|t| t.as_str().to_owned()).collect(),
            ..IdentityMappingPolicySpec::default()
        };
        Desired::with_spec(self.place.clone(), &spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::apis::ServedApis;
    use crate::objects::owned::{self, Where};
    use crate::values::crn;
    use serde_json::json;

    #[test]
    fn policy_has_the_runbooks_shape() {
        let source = crn::parse("crn:v1:staging:public:sts:us-south:a/1234:123456789::").unwrap();
        let target =
            crn::parse_kms_target("crn:v1:icp:private:kms:mycluster:n/kube-system:0d70::").unwrap();
        let at = Where {
            policy: Some("stspolicy"),
            ..Where::namespaces("kube-system", "istio-system")
        };
        let policy = IdentityMapping {
            place: owned::POLICY.place(&ServedApis::preferred(), &at).unwrap(),
            source: &source,
            targets: std::slice::from_ref(&target),
            secret: "sts-apikey",
            secret_key: "apikey",
        }
        .policy();
        let spec = &policy.object["spec"];
        assert_eq!(policy.object["apiVersion"], "policy.ibm.com/v1alpha1");
        assert_eq!(spec["mappingType"], "inbound");
        assert_eq!(spec["sourceAuthority"], "ibm-cloud-iam");
        assert_eq!(spec["identityMapping"]["sourceIdentity"], source.as_str());
        assert_eq!(
            spec["identityMapping"]["targetCredentials"]["apiKeyRef"]["secretName"],
            "sts-apikey"
        );
        assert_eq!(spec["targetResources"], json!([target.as_str()]));
        assert_eq!(policy.object["metadata"]["namespace"], "istio-system");
        assert_eq!(policy.object["metadata"]["name"], "stspolicy");
    }
}
