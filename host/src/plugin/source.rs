//! Where plugin bytes come from: the built-ins embedded by `build.rs`, or a
//! `.wasm` file named in the config.

use std::borrow::Cow;

use super::Error;
use crate::config::PluginRef;

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Names of the built-in plugins, as used after `builtin:`.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_PLUGINS.iter().map(|(name, _)| *name).collect()
}

/// The component bytes of `plugin`.
pub(super) fn read(plugin: &PluginRef) -> Result<Cow<'static, [u8]>, Error> {
    match plugin {
        PluginRef::Builtin(name) => BUILTIN_PLUGINS
            .iter()
            .find(|(builtin, _)| builtin == name)
            .map(|(_, bytes)| Cow::Borrowed(*bytes))
            .ok_or_else(|| Error::UnknownBuiltin {
                name: name.clone(),
                known: builtin_names().join(", "),
            }),
        PluginRef::File(path) => {
            std::fs::read(path)
                .map(Cow::Owned)
                .map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })
        }
    }
}
