//! The loader's bounds on its input. A Compose file comes from whoever
//! hands it to `shoal stack deploy`, and YAML and `${VAR}` can make a small
//! text stand for a huge one (a "billion laughs" alias bomb is 1 KiB that
//! expands to gigabytes), so every way the input can grow is capped, and a
//! file past a cap is refused with an error that names the cap — before the
//! memory or time is spent, not after.
//!
//! The numbers are far above real Compose files (typical public ones are a
//! few KiB, a few hundred values and under 10 levels deep) and far below
//! what would hurt the machine.

use std::io::Read as _;
use std::path::Path;

/// Largest Compose, `.env` or `env_file` file read. Files are read through a
/// reader that stops here, so pointing `env_file:` at `/dev/zero` or a
/// multi-GB log fails at once.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Most text (scalars and keys) one file may stand for once aliases are
/// expanded, and again once variables are substituted. Bytes, not nodes: a
/// single aliased 1 MiB scalar repeated a thousand times is one thousand
/// nodes but a gigabyte.
pub const MAX_EXPANDED_BYTES: usize = 16 << 20;

/// Most values (scalars, lists and mappings) one file may stand for once
/// aliases are expanded.
pub const MAX_NODES: usize = 1_000_000;

/// Deepest nesting of lists and mappings, counted after aliases are spliced
/// in (an alias to a deep anchor placed deep down adds both depths). Every
/// later stage walks the tree recursively, so this is what keeps them off
/// the end of the stack.
pub const MAX_DEPTH: usize = 128;

/// Deepest nesting of `${VAR:-${OTHER:-…}}` defaults; substitution recurses
/// once per level.
pub const MAX_INTERPOLATION_DEPTH: usize = 16;

/// The limits as people read them, for error messages: `4 MiB`.
pub(crate) fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes >> 20)
}

/// `std::fs::read_to_string`, but reading at most [`MAX_FILE_BYTES`]: a
/// larger file (or an endless one like `/dev/zero`) fails with
/// `InvalidData` after that many bytes instead of filling memory.
pub(crate) fn read_to_string(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            too_large_message(),
        ));
    }
    Ok(text)
}

pub(crate) fn too_large_message() -> String {
    format!(
        "the file is larger than {}, the most shoal reads",
        mib(MAX_FILE_BYTES)
    )
}
