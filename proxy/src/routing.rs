//! One listener's rule table (§1.3): rules by ascending priority, first full match wins, the
//! default action last.

use scalegate_config::{Action, Listener, Protocol};

use crate::actions::{CompiledFixedResponse, CompiledForward, CompiledRedirect};
use crate::matching::{CompiledConditions, RequestFacts};

/// ALB's listener-rule priority range; 0 is reserved for the default action in access logs.
const RULE_PRIORITIES: std::ops::RangeInclusive<u32> = 1..=50_000;

/// A terminal action, compiled so the handler only executes it.
#[derive(Debug, Clone)]
pub enum CompiledAction {
    /// Send to a target group chosen by weight and stickiness.
    Forward(CompiledForward),
    /// Answer 301/302 with a Location built from the request.
    Redirect(CompiledRedirect),
    /// Answer with a fixed status, content type and body.
    FixedResponse(CompiledFixedResponse),
}

impl CompiledAction {
    /// Compiles one action; `listener_protocol` is needed for the redirect HTTPS→HTTP check.
    pub fn compile(
        action: &Action,
        listener_protocol: Protocol,
        target_group_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<CompiledAction, String> {
        Ok(match action {
            Action::Forward(forward) => {
                CompiledAction::Forward(CompiledForward::compile(forward, target_group_index)?)
            }
            Action::Redirect(redirect) => {
                CompiledAction::Redirect(CompiledRedirect::compile(redirect, listener_protocol)?)
            }
            Action::FixedResponse(fixed) => {
                CompiledAction::FixedResponse(CompiledFixedResponse::compile(fixed)?)
            }
        })
    }

    /// The access log's `actions_executed` value for this action.
    pub fn log_name(&self) -> &'static str {
        match self {
            CompiledAction::Forward(_) => "forward",
            CompiledAction::Redirect(_) => "redirect",
            CompiledAction::FixedResponse(_) => "fixed-response",
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledRule {
    priority: u32,
    conditions: CompiledConditions,
    action: CompiledAction,
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// What to do with the request.
    pub action: &'a CompiledAction,
    /// The access log's `matched_rule_priority`: the rule's priority, or 0 for the default
    /// action.
    pub matched_rule_priority: u32,
}

/// The compiled rules of one listener; immutable, so it can be shared across workers and
/// swapped whole on reload.
#[derive(Debug, Clone)]
pub struct ListenerRoutes {
    rules: Box<[CompiledRule]>,
    default_action: CompiledAction,
}

impl ListenerRoutes {
    /// Compiles every rule and the default action; errors name the rule's priority. Rejects
    /// priorities outside 1–50000 and duplicates (order would otherwise be arbitrary).
    pub fn compile(
        listener: &Listener,
        target_group_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<ListenerRoutes, String> {
        let protocol = listener.protocol;
        let mut rules = Vec::with_capacity(listener.rules.len());
        for rule in &listener.rules {
            let priority = rule.priority;
            let in_rule = |error: String| format!("rule with priority {priority}: {error}");
            if !RULE_PRIORITIES.contains(&priority) {
                return Err(in_rule("priority must be 1-50000".into()));
            }
            let conditions = CompiledConditions::compile(&rule.conditions).map_err(in_rule)?;
            let action = CompiledAction::compile(&rule.action, protocol, target_group_index)
                .map_err(in_rule)?;
            rules.push(CompiledRule {
                priority,
                conditions,
                action,
            });
        }
        rules.sort_by_key(|rule| rule.priority);
        if let Some(pair) = rules
            .windows(2)
            .find(|pair| pair[0].priority == pair[1].priority)
        {
            return Err(format!("two rules have priority {}", pair[0].priority));
        }
        let default_action =
            CompiledAction::compile(&listener.default_action, protocol, target_group_index)
                .map_err(|error| format!("default action: {error}"))?;
        Ok(ListenerRoutes {
            rules: rules.into_boxed_slice(),
            default_action,
        })
    }

    /// Finds the action for `request`: the lowest-priority rule whose conditions all match,
    /// else the default action. Allocation- and lock-free.
    pub fn route(&self, request: &RequestFacts<'_>) -> RouteMatch<'_> {
        self.rules
            .iter()
            .find(|rule| rule.conditions.matches(request))
            .map(|rule| RouteMatch {
                action: &rule.action,
                matched_rule_priority: rule.priority,
            })
            .unwrap_or(RouteMatch {
                action: &self.default_action,
                matched_rule_priority: 0,
            })
    }

    /// Every compiled action (rules then default), e.g. to find the target groups in use.
    pub fn actions(&self) -> impl Iterator<Item = &CompiledAction> {
        self.rules
            .iter()
            .map(|rule| &rule.action)
            .chain(std::iter::once(&self.default_action))
    }

    /// Indices of the target groups some action forwards to (weight 0 included): the groups
    /// "in use", whose targets are health-checked.
    pub fn target_groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.actions().flat_map(|action| {
            match action {
                CompiledAction::Forward(forward) => Some(forward.target_groups()),
                _ => None,
            }
            .into_iter()
            .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use scalegate_config::{Condition, FixedResponseAction, ForwardAction, Rule};
    use std::net::{IpAddr, Ipv4Addr};

    fn fixed(status_code: u16) -> Action {
        Action::FixedResponse(FixedResponseAction {
            status_code,
            content_type: None,
            message_body: String::new(),
        })
    }

    fn path_rule(priority: u32, pattern: &str, status_code: u16) -> Rule {
        Rule {
            priority,
            conditions: vec![Condition::PathPattern(vec![pattern.into()])],
            action: fixed(status_code),
        }
    }

    fn listener(rules: Vec<Rule>) -> Listener {
        Listener {
            name: None,
            protocol: Protocol::Http,
            address: "127.0.0.1:0".parse().unwrap(),
            http2_prior_knowledge: false,
            tls: None,
            rules,
            default_action: fixed(404),
        }
    }

    fn no_groups(_: &str) -> Option<usize> {
        None
    }

    fn route_status(routes: &ListenerRoutes, path: &str) -> (u16, u32) {
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            method: "GET",
            host: Some("example.com"),
            path,
            query: None,
            headers: &headers,
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let matched = routes.route(&facts);
        match matched.action {
            CompiledAction::FixedResponse(fixed) => {
                (fixed.status().as_u16(), matched.matched_rule_priority)
            }
            other => panic!("unexpected action {other:?}"),
        }
    }

    #[test]
    fn lowest_priority_wins_even_when_listed_later() {
        let routes = ListenerRoutes::compile(
            &listener(vec![
                path_rule(20, "/api/*", 200),
                path_rule(5, "/api/admin/*", 403),
                path_rule(10, "/api/*", 201),
            ]),
            &no_groups,
        )
        .unwrap();
        assert_eq!(route_status(&routes, "/api/admin/x"), (403, 5));
        assert_eq!(route_status(&routes, "/api/users"), (201, 10));
    }

    #[test]
    fn default_action_has_priority_zero() {
        let routes =
            ListenerRoutes::compile(&listener(vec![path_rule(1, "/a", 200)]), &no_groups).unwrap();
        assert_eq!(route_status(&routes, "/b"), (404, 0));
        let empty = ListenerRoutes::compile(&listener(vec![]), &no_groups).unwrap();
        assert_eq!(route_status(&empty, "/"), (404, 0));
        assert_eq!(empty.actions().count(), 1);
    }

    #[test]
    fn compile_errors_name_the_rule() {
        let duplicate = listener(vec![path_rule(7, "/a", 200), path_rule(7, "/b", 200)]);
        assert!(ListenerRoutes::compile(&duplicate, &no_groups)
            .unwrap_err()
            .contains('7'));
        let zero = listener(vec![path_rule(0, "/a", 200)]);
        assert!(ListenerRoutes::compile(&zero, &no_groups).is_err());
        let too_high = listener(vec![path_rule(50_001, "/a", 200)]);
        assert!(ListenerRoutes::compile(&too_high, &no_groups).is_err());
        let mut unknown_group = listener(vec![]);
        unknown_group.default_action = Action::Forward(ForwardAction {
            target_group: Some("missing".into()),
            target_groups: vec![],
            stickiness: None,
        });
        let error = ListenerRoutes::compile(&unknown_group, &no_groups).unwrap_err();
        assert!(error.contains("default action"), "{error}");
    }

    #[test]
    fn forward_actions_resolve_group_indices() {
        let mut with_forward = listener(vec![]);
        with_forward.default_action = Action::Forward(ForwardAction {
            target_group: Some("web".into()),
            target_groups: vec![],
            stickiness: None,
        });
        let routes =
            ListenerRoutes::compile(&with_forward, &|name| (name == "web").then_some(3)).unwrap();
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            method: "GET",
            host: None,
            path: "/",
            query: None,
            headers: &headers,
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let matched = routes.route(&facts);
        assert_eq!(matched.action.log_name(), "forward");
        let CompiledAction::Forward(forward) = matched.action else {
            panic!("not forward")
        };
        assert_eq!(forward.choose(std::iter::empty(), 12345).target_group, 3);
    }
}
