//! Saving and loading the state file (a demo survives a restart).

use std::path::Path;

use super::errors::SimError;
use super::server::App;
use super::state::State;

pub fn save(app: &App, path: &Path) -> Result<(), SimError> {
    let io = |source| SimError::StateIo {
        path: path.display().to_string(),
        source,
    };
    let json =
        serde_json::to_vec_pretty(&*app.state()).map_err(|source| SimError::StateFormat {
            path: path.display().to_string(),
            source,
        })?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads a state file; a missing file means a fresh world.
pub fn load(path: &Path) -> Result<Option<State>, SimError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| SimError::StateFormat {
                    path: path.display().to_string(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SimError::StateIo {
            path: path.display().to_string(),
            source,
        }),
    }
}
