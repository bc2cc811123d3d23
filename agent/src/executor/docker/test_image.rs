//! The image the Docker tests run, built here without a registry by
//! `agent/testdata/build-test-image.sh` (FROM scratch, a static busybox at
//! `/busybox`, no ENTRYPOINT, CMD `/busybox sleep 3600`, a `/data` volume).
//! The e2e suites and `.ci/run` call the same script.

use std::path::PathBuf;
use std::process::Command;

/// The tag `.ci/run` and the e2e suites build.
pub const TEST_IMAGE: &str = "shoal-test/busybox:1";

/// The script that builds the test image.
pub fn build_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/build-test-image.sh")
}

/// Builds the test image as `tag` (quick when its layers are cached). The
/// error names what is missing (busybox-static, the docker CLI) as the script
/// says it.
pub fn ensure_test_image(tag: &str) -> Result<(), String> {
    let script = build_script();
    let output = Command::new("bash")
        .arg(&script)
        .arg(tag)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {tag} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
