//! TEMPORARY stub; replaced by the helper-routing branch.
use crate::actions::{CompiledFixedResponse, CompiledForward, CompiledRedirect};
use crate::matching::RequestFacts;

pub enum CompiledAction {
    Forward(CompiledForward),
    Redirect(CompiledRedirect),
    FixedResponse(CompiledFixedResponse),
}

pub struct RouteMatch<'a> {
    pub action: &'a CompiledAction,
    pub priority: u32,
}

pub struct ListenerRoutes {
    default: CompiledAction,
}

impl ListenerRoutes {
    pub fn compile(
        listener: &scalegate_config::Listener,
        target_group_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<ListenerRoutes, String> {
        let default = match &listener.default_action {
            scalegate_config::Action::Forward(f) => CompiledAction::Forward(CompiledForward {
                target_group: target_group_index(f.target_group.as_deref().unwrap_or(""))
                    .ok_or("unknown")?,
            }),
            _ => return Err("stub".into()),
        };
        Ok(ListenerRoutes { default })
    }
    pub fn route(&self, _request: &RequestFacts<'_>) -> RouteMatch<'_> {
        RouteMatch {
            action: &self.default,
            priority: 0,
        }
    }
}
