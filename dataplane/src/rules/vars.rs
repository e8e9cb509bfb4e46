//! Variables set by `set-var` and read by `var()`: kept per client connection, with the
//! shorter scopes cleared as each request and response ends.

use super::value::Value;
use percore_config::rules::sample::{VarName, VarScope};

/// A connection's variables.
#[derive(Debug, Default)]
pub struct Vars {
    list: Vec<(VarName, Value<'static>)>,
}

impl Vars {
    /// The value of `name`, if set.
    pub fn get(&self, name: &VarName) -> Option<&Value<'static>> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets `name`.
    pub fn set(&mut self, name: &VarName, value: Value<'_>) {
        let value = value.into_owned();
        match self.list.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.list.push((name.clone(), value)),
        }
    }

    /// Removes `name`.
    pub fn unset(&mut self, name: &VarName) {
        self.list.retain(|(n, _)| n != name);
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forgets the variables of a finished transaction: all but the `sess` ones.
    pub fn end_transaction(&mut self) {
        self.list.retain(|(n, _)| n.scope == VarScope::Sess);
    }
}
