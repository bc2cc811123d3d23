//! The Compose loader behind `shoal stack deploy -c FILE…`: YAML (anchors,
//! aliases, merge keys), `.env` parsing, `${VAR}` interpolation, multi-file
//! merge and schema validation. Any input loads or is refused with an error;
//! never a panic, a stack overflow, a hang or a memory blow-up (libFuzzer's
//! `-rss_limit_mb` and `-timeout` catch the last two). A stack that loads
//! renders (`shoal stack config`) to a file that loads back to the same
//! rendering, as `render` promises.
//!
//! Input layout: sections separated by a line `%%`. The first is a `.env`
//! text (its variables feed interpolation; if it does not parse, there are
//! none), every later one a Compose file, merged in order as `-c a -c b`.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sections = text.split("\n%%\n");
    let dotenv = sections.next().unwrap_or_default();
    let vars: HashMap<String, String> = shoal_compose::parse_dotenv(".env", dotenv)
        .map(|pairs| {
            pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        })
        .unwrap_or_default();
    let files: Vec<(String, String)> = sections
        .enumerate()
        .map(|(i, text)| (format!("f{i}.yml"), text.to_owned()))
        .collect();
    if files.is_empty() {
        return;
    }
    // A directory that does not exist: relative `env_file`s are missing
    // files, not whatever the fuzzing machine holds.
    let base = Path::new("/nonexistent/shoal-fuzz");
    let Ok(stack) = shoal_compose::load_sources(&files, &vars, base) else {
        return;
    };
    let _ = shoal_compose::startup_order(&stack);
    let _ = shoal_compose::unsupported_options_line(&stack.warnings);
    let rendered = shoal_compose::render(&stack);
    let again = shoal_compose::load_str("rendered.yml", &rendered, &HashMap::new())
        .unwrap_or_else(|e| panic!("the rendering does not load: {e}\n{rendered}"));
    assert_eq!(
        shoal_compose::render(&again),
        rendered,
        "the rendering loads to a different stack"
    );
});
