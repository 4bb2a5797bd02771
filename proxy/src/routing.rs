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
}
