//! DescribeAcls, CreateAcls and DeleteAcls over the broker's authorizer (`crate::acl`).
//! Without an `[authorizer]` section they answer SECURITY_DISABLED, as Kafka does without
//! `authorizer.class.name`; describing needs DESCRIBE on the cluster, changing needs ALTER.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Context};
use crate::acl::{
    AclBinding, AclFilter, Authorizer, Operation, PatternType, Permission, ResourceType,
    CLUSTER_NAME,
};
use crate::broker::Broker;

fn s(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|v| v.as_str().to_string())
}

/// The authorizer, if the caller may do `op` on the cluster; else Kafka's error.
fn authorizer<'a>(
    broker: &'a Broker,
    ctx: &Context,
    op: Operation,
) -> Result<&'a Authorizer, ResponseError> {
    let Some(acls) = broker.acls.as_ref() else {
        return Err(ResponseError::SecurityDisabled);
    };
    if acls.authorize(
        &ctx.principal,
        &ctx.client_host,
        op,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        Ok(acls)
    } else {
        Err(ResponseError::ClusterAuthorizationFailed)
    }
}

/// DescribeAcls: the bindings the filter matches, grouped by resource pattern.
pub fn describe_acls(
    broker: &Broker,
    ctx: &Context,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let acls = match authorizer(broker, ctx, Operation::Describe) {
        Ok(a) => a,
        Err(e) => return DescribeAclsResponse::default().with_error_code(e.code()),
    };
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: s(&req.resource_name_filter),
        pattern_type: req.pattern_type_filter,
        principal: s(&req.principal_filter),
        host: s(&req.host_filter),
        operation: req.operation,
        permission: req.permission_type,
    };
    if let Err(why) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(format!("invalid filter: {why}"))));
    }
    let mut found = acls.describe(&filter);
    found.sort();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in found {
        let acl = AclDescription::default()
            .with_principal(str_bytes(b.principal))
            .with_host(str_bytes(b.host))
            .with_operation(b.operation.code())
            .with_permission_type(b.permission.code());
        match resources.last_mut() {
            Some(r)
                if r.resource_type == b.resource_type.code()
                    && r.pattern_type == b.pattern_type.code()
                    && r.resource_name.as_str() == b.resource_name =>
            {
                r.acls.push(acl)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(str_bytes(b.resource_name))
                    .with_pattern_type(b.pattern_type.code())
                    .with_acls(vec![acl]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// CreateAcls: each valid binding is added; invalid ones get INVALID_REQUEST.
pub fn create_acls(broker: &Broker, ctx: &Context, req: CreateAclsRequest) -> CreateAclsResponse {
    let acls = match authorizer(broker, ctx, Operation::Alter) {
        Ok(a) => a,
        Err(e) => {
            return CreateAclsResponse::default().with_results(
                req.creations
                    .iter()
                    .map(|_| AclCreationResult::default().with_error_code(e.code()))
                    .collect(),
            )
        }
    };
    let parsed: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or_else(|| format!("resource type {}", c.resource_type))?,
                resource_name: c.resource_name.as_str().to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or_else(|| format!("pattern type {}", c.resource_pattern_type))?,
                principal: c.principal.as_str().to_string(),
                host: c.host.as_str().to_string(),
                operation: Operation::from_code(c.operation)
                    .ok_or_else(|| format!("operation {}", c.operation))?,
                permission: Permission::from_code(c.permission_type)
                    .ok_or_else(|| format!("permission type {}", c.permission_type))?,
            };
            binding.validate()?;
            Ok(binding)
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        acls.create(&valid)
    };
    if let Err(e) = &stored {
        tracing::error!(error = %e, "storing ACLs failed");
    }
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(why), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!("invalid ACL: {why}")))),
            (Ok(_), Err(e)) => AclCreationResult::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(str_bytes(e.to_string()))),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// DeleteAcls: each filter removes the bindings it matches and lists them.
pub fn delete_acls(broker: &Broker, ctx: &Context, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let acls = match authorizer(broker, ctx, Operation::Alter) {
        Ok(a) => a,
        Err(e) => {
            return DeleteAclsResponse::default().with_filter_results(
                req.filters
                    .iter()
                    .map(|_| DeleteAclsFilterResult::default().with_error_code(e.code()))
                    .collect(),
            )
        }
    };
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: s(&f.resource_name_filter),
            pattern_type: f.pattern_type_filter,
            principal: s(&f.principal_filter),
            host: s(&f.host_filter),
            operation: f.operation,
            permission: f.permission_type,
        })
        .collect();
    let checks: Vec<Result<(), String>> = filters.iter().map(AclFilter::validate).collect();
    let usable: Vec<AclFilter> = filters
        .iter()
        .zip(&checks)
        .filter(|(_, c)| c.is_ok())
        .map(|(f, _)| f.clone())
        .collect();
    let removed = acls.delete(&usable);
    let mut removed = match removed {
        Ok(r) => r.into_iter(),
        Err(e) => {
            tracing::error!(error = %e, "storing ACLs failed");
            return DeleteAclsResponse::default().with_filter_results(
                req.filters
                    .iter()
                    .map(|_| {
                        DeleteAclsFilterResult::default()
                            .with_error_code(ResponseError::UnknownServerError.code())
                            .with_error_message(Some(str_bytes(e.to_string())))
                    })
                    .collect(),
            );
        }
    };
    let results = checks
        .into_iter()
        .map(|check| match check {
            Err(why) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!("invalid filter: {why}")))),
            Ok(()) => DeleteAclsFilterResult::default().with_matching_acls(
                removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(str_bytes(b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(str_bytes(b.principal))
                            .with_host(str_bytes(b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
