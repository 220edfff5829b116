//! How a [`DynamicSupervisor`](super::DynamicSupervisor) is limited.

use super::Intensity;

/// Limits of a [`DynamicSupervisor`](super::DynamicSupervisor).
#[derive(Clone, Copy, Debug, Default)]
pub struct DynamicSupervisorConfig {
    pub(super) max_children: Option<usize>,
    pub(super) intensity: Intensity,
}

impl DynamicSupervisorConfig {
    /// No child limit, the default [`Intensity`].
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `max` children at once; beyond it `start_child` fails with
    /// [`StartChildError::MaxChildren`](super::StartChildError::MaxChildren) (a refusal, not a restart-intensity failure).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Restart intensity for permanent and transient children.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }
}
