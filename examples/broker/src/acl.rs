//! Kafka's authorization model: ACL bindings (a resource pattern, a principal, a host, an
//! operation, allow or deny), `super.users`, and the decision Kafka's `StandardAuthorizer`
//! makes for a request. The bindings live in `DATA_DIR/acls.toml`, rewritten crash-safely on
//! each CreateAcls or DeleteAcls that changes them.
//!
//! ```toml
//! [authorizer]                       # present: ACLs are enforced (deny by default)
//! super_users = ["User:admin"]       # Kafka's super.users
//! allow_everyone_if_no_acl_found = false
//! ```
//!
//! The decision, for a principal at a host asking for an operation on a resource:
//! super users may do anything; otherwise the bindings whose pattern matches the resource
//! (literal name, the literal wildcard `*`, or a prefix) are the candidates; none at all
//! answers `allow_everyone_if_no_acl_found`; a matching DENY wins over any ALLOW; an ALLOW of
//! the operation, of ALL, or of an operation that implies it (READ, WRITE, DELETE and ALTER
//! imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows; anything else is denied.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::durable_file;

/// The file holding the bindings, in the data directory.
pub const ACLS_FILE: &str = "acls.toml";

/// Kafka's principal for a client that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The only name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The `[authorizer]` section of the config file; its presence turns ACLs on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:NAME`) allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: a resource no binding matches is open to all.
    pub allow_everyone_if_no_acl_found: bool,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $code:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$v => $code),* }
            }

            /// The value of a wire code, if it names a concrete value (not ANY, UNKNOWN or
            /// MATCH).
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$v),)* _ => None }
            }
        }
    };
}

wire_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        /// A topic.
        Topic = 2,
        /// A consumer group.
        Group = 3,
        /// The cluster (named `kafka-cluster`).
        Cluster = 4,
        /// A transactional id.
        TransactionalId = 5,
        /// A delegation token (stored, never asked for here).
        DelegationToken = 6,
        /// A user (stored, never asked for here).
        User = 7,
    }
);

wire_enum!(
    /// Kafka's `PatternType` of a stored binding.
    PatternType {
        /// The resource name exactly, or every resource when the name is `*`.
        Literal = 3,
        /// Every resource whose name starts with the name.
        Prefixed = 4,
    }
);

wire_enum!(
    /// Kafka's `AclOperation`.
    Operation {
        /// Every operation.
        All = 2,
        /// Read.
        Read = 3,
        /// Write.
        Write = 4,
        /// Create.
        Create = 5,
        /// Delete.
        Delete = 6,
        /// Alter.
        Alter = 7,
        /// Describe.
        Describe = 8,
        /// Cluster action (inter-broker).
        ClusterAction = 9,
        /// Describe configs.
        DescribeConfigs = 10,
        /// Alter configs.
        AlterConfigs = 11,
        /// Idempotent write (cluster).
        IdempotentWrite = 12,
        /// Create tokens.
        CreateTokens = 13,
        /// Describe tokens.
        DescribeTokens = 14,
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType`.
    Permission {
        /// Deny: wins over any allow.
        Deny = 2,
        /// Allow.
        Allow = 3,
    }
);

/// The wire code of ANY in every ACL enum.
pub const ANY: i8 = 1;
/// The wire code of MATCH in `PatternType` filters.
pub const MATCH: i8 = 2;

/// One ACL: who may (or may not) do what to which resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource name (or prefix, or `*`).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// `User:NAME`, or `User:*` for everyone.
    pub principal: String,
    /// The client's address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Whether this binding's pattern covers the resource `name` of `resource_type`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Checks a binding a client asks to create, as Kafka does; the reason when invalid.
    pub fn validate(&self) -> Result<(), String> {
        let Some((kind, name)) = self.principal.split_once(':') else {
            return Err(format!("principal {:?} is not TYPE:NAME", self.principal));
        };
        if kind.is_empty() || name.is_empty() {
            return Err(format!("principal {:?} is not TYPE:NAME", self.principal));
        }
        if self.host.is_empty() {
            return Err("the host is empty".into());
        }
        if self.resource_name.is_empty() {
            return Err("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_NAME || self.pattern_type != PatternType::Literal)
        {
            return Err(format!(
                "the cluster resource is the literal {CLUSTER_NAME:?}"
            ));
        }
        Ok(())
    }
}

/// A filter over bindings (DescribeAcls, DeleteAcls): wire codes, ANY (1) matching any
/// value; `None` strings match any.
#[derive(Debug, Clone)]
pub struct AclFilter {
    /// Resource type code, or ANY.
    pub resource_type: i8,
    /// Resource name, or any.
    pub resource_name: Option<String>,
    /// Pattern type code: ANY, MATCH, LITERAL or PREFIXED.
    pub pattern_type: i8,
    /// Principal, or any.
    pub principal: Option<String>,
    /// Host, or any.
    pub host: Option<String>,
    /// Operation code, or ANY.
    pub operation: i8,
    /// Permission code, or ANY.
    pub permission: i8,
}

impl AclFilter {
    /// Why the filter is unusable (an UNKNOWN code, or a value no enum has), if it is.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |code: i8, concrete: bool| code == ANY || concrete;
        if !ok(
            self.resource_type,
            ResourceType::from_code(self.resource_type).is_some(),
        ) {
            return Err(format!("resource type {}", self.resource_type));
        }
        if !(self.pattern_type == MATCH
            || ok(
                self.pattern_type,
                PatternType::from_code(self.pattern_type).is_some(),
            ))
        {
            return Err(format!("pattern type {}", self.pattern_type));
        }
        if !ok(
            self.operation,
            Operation::from_code(self.operation).is_some(),
        ) {
            return Err(format!("operation {}", self.operation));
        }
        if !ok(
            self.permission,
            Permission::from_code(self.permission).is_some(),
        ) {
            return Err(format!("permission type {}", self.permission));
        }
        Ok(())
    }

    /// Whether `b` passes this filter (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, b: &AclBinding) -> bool {
        let code_ok = |filter: i8, value: i8| filter == ANY || filter == value;
        let str_ok =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        let pattern_ok = match (&self.resource_name, self.pattern_type) {
            (None, p) => p == ANY || p == MATCH || p == b.pattern_type.code(),
            (Some(name), MATCH) => b.covers(b.resource_type, name),
            (Some(name), p) => code_ok(p, b.pattern_type.code()) && *name == b.resource_name,
        };
        code_ok(self.resource_type, b.resource_type.code())
            && pattern_ok
            && str_ok(&self.principal, &b.principal)
            && str_ok(&self.host, &b.host)
            && code_ok(self.operation, b.operation.code())
            && code_ok(self.permission, b.permission.code())
    }
}

/// The file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    acl: Vec<AclBinding>,
}

/// The authorizer: the config and the stored bindings.
#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    path: PathBuf,
    bindings: RwLock<Vec<AclBinding>>,
}

impl Authorizer {
    /// Loads `DATA_DIR/acls.toml` (none yet: no bindings).
    pub fn open(data_dir: &Path, config: AuthorizerConfig) -> anyhow::Result<Authorizer> {
        let path = data_dir.join(ACLS_FILE);
        let bindings = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let stored: Stored =
                    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                stored.acl
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Authorizer {
            config,
            path,
            bindings: RwLock::new(bindings),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<AclBinding>> {
        self.bindings.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` at `host` may perform `op` on the resource.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let bindings = self.read();
        let mut candidates = bindings
            .iter()
            .filter(|b| b.covers(resource_type, name))
            .peekable();
        if candidates.peek().is_none() {
            return self.config.allow_everyone_if_no_acl_found;
        }
        let mut allowed = false;
        for b in candidates {
            let who = (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*");
            if !who {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return false
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= implies(b.operation, op),
            }
        }
        allowed
    }

    /// Whether `principal` at `host` is allowed `op` on at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, used for idempotent producers:
    /// WRITE on any topic stands in for IDEMPOTENT_WRITE on the cluster).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let bindings = self.read();
        let who = |b: &AclBinding| {
            b.resource_type == resource_type
                && (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        };
        // A literal wildcard deny closes every resource of the type.
        let denied_everywhere = bindings.iter().any(|b| {
            who(b)
                && b.permission == Permission::Deny
                && b.pattern_type == PatternType::Literal
                && b.resource_name == "*"
                && (b.operation == op || b.operation == Operation::All)
        });
        if denied_everywhere {
            return false;
        }
        // An allowed resource not also covered by a deny of the same principal.
        bindings.iter().any(|b| {
            who(b)
                && b.permission == Permission::Allow
                && implies(b.operation, op)
                && self.authorize(principal, host, op, resource_type, &b.resource_name)
        }) || (self.config.allow_everyone_if_no_acl_found
            && !bindings.iter().any(|b| b.resource_type == resource_type))
    }

    /// The bindings `filter` matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.read()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Adds the bindings not already there and stores the result; the store is unchanged
    /// when writing fails.
    pub fn create(&self, new: &[AclBinding]) -> anyhow::Result<()> {
        let mut bindings = self.bindings.write().unwrap_or_else(|p| p.into_inner());
        let mut next = bindings.clone();
        for b in new {
            if !next.contains(b) {
                next.push(b.clone());
            }
        }
        self.store(&next)?;
        *bindings = next;
        Ok(())
    }

    /// Removes, for each filter, the bindings it matches, and stores the result; what each
    /// filter removed. The store is unchanged when writing fails.
    pub fn delete(&self, filters: &[AclFilter]) -> anyhow::Result<Vec<Vec<AclBinding>>> {
        let mut bindings = self.bindings.write().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| bindings.iter().filter(|b| f.matches(b)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = bindings
            .iter()
            .filter(|b| !filters.iter().any(|f| f.matches(b)))
            .cloned()
            .collect();
        if next.len() != bindings.len() {
            self.store(&next)?;
            *bindings = next;
        }
        Ok(removed)
    }

    fn store(&self, bindings: &[AclBinding]) -> anyhow::Result<()> {
        let text = toml::to_string(&Stored {
            acl: bindings.to_vec(),
        })
        .context("encoding ACLs")?;
        durable_file::write(&self.path, &text)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn implies(granted: Operation, wanted: Operation) -> bool {
    use Operation as O;
    granted == wanted
        || granted == O::All
        || (wanted == O::Describe && matches!(granted, O::Read | O::Write | O::Delete | O::Alter))
        || (wanted == O::DescribeConfigs && granted == O::AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    fn any_filter() -> AclFilter {
        AclFilter {
            resource_type: ANY,
            resource_name: None,
            pattern_type: ANY,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        }
    }

    #[test]
    fn kafkas_decision_rules() {
        use Operation as O;
        use PatternType as P;
        use ResourceType as R;
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(
            dir.path(),
            AuthorizerConfig {
                super_users: vec!["User:admin".into()],
                allow_everyone_if_no_acl_found: false,
            },
        )
        .unwrap();
        auth.create(&[
            binding(
                R::Topic,
                "orders",
                P::Literal,
                "User:alice",
                O::Read,
                Permission::Allow,
            ),
            binding(
                R::Topic,
                "logs-",
                P::Prefixed,
                "User:*",
                O::Write,
                Permission::Allow,
            ),
            binding(
                R::Topic,
                "logs-secret",
                P::Literal,
                "User:bob",
                O::All,
                Permission::Deny,
            ),
            binding(
                R::Group,
                "*",
                P::Literal,
                "User:alice",
                O::All,
                Permission::Allow,
            ),
        ])
        .unwrap();
        let can = |who: &str, op, rt, name: &str| auth.authorize(who, "127.0.0.1", op, rt, name);
        assert!(can("User:alice", O::Read, R::Topic, "orders"));
        // READ implies DESCRIBE; it does not imply WRITE.
        assert!(can("User:alice", O::Describe, R::Topic, "orders"));
        assert!(!can("User:alice", O::Write, R::Topic, "orders"));
        assert!(!can("User:bob", O::Read, R::Topic, "orders"));
        // Prefixed, for everyone; a deny wins over it.
        assert!(can("User:bob", O::Write, R::Topic, "logs-app"));
        assert!(!can("User:bob", O::Write, R::Topic, "logs-secret"));
        assert!(can("User:alice", O::Write, R::Topic, "logs-secret"));
        // The literal wildcard.
        assert!(can("User:alice", O::Read, R::Group, "any-group"));
        // No binding covers it: denied by default; super users may do anything.
        assert!(!can("User:alice", O::Read, R::Topic, "other"));
        assert!(can("User:admin", O::Alter, R::Cluster, CLUSTER_NAME));
        // WRITE on some topic stands in for IDEMPOTENT_WRITE.
        assert!(auth.authorize_any("User:bob", "h", O::Write, R::Topic));
        assert!(!auth.authorize_any("User:alice", "h", O::Delete, R::Topic));

        // Persisted: a new authorizer on the directory decides the same.
        let again = Authorizer::open(dir.path(), AuthorizerConfig::default()).unwrap();
        assert_eq!(again.describe(&any_filter()).len(), 4);
        assert!(again.authorize("User:alice", "h", O::Read, R::Topic, "orders"));
        // MATCH finds every binding covering a name; deletion by filter persists.
        let matching = AclFilter {
            resource_type: R::Topic.code(),
            resource_name: Some("logs-secret".into()),
            pattern_type: MATCH,
            ..any_filter()
        };
        assert_eq!(again.describe(&matching).len(), 2);
        let removed = again.delete(&[matching]).unwrap();
        assert_eq!(removed[0].len(), 2);
        let third = Authorizer::open(dir.path(), AuthorizerConfig::default()).unwrap();
        assert_eq!(third.describe(&any_filter()).len(), 2);
    }

    #[test]
    fn invalid_bindings_and_filters_are_refused() {
        let mut b = binding(
            ResourceType::Cluster,
            "other",
            PatternType::Literal,
            "User:x",
            Operation::Alter,
            Permission::Allow,
        );
        assert!(b.validate().is_err());
        b.resource_name = CLUSTER_NAME.into();
        assert!(b.validate().is_ok());
        b.principal = "nobody".into();
        assert!(b.validate().is_err());
        let f = AclFilter {
            operation: 0,
            ..any_filter()
        };
        assert!(f.validate().is_err());
        assert!(any_filter().validate().is_ok());
    }
}
