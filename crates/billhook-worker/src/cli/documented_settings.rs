//! docs/configuration.md and the command lines cannot drift apart: every setting read from
//! the environment by either binary has a row there with its flag and default, and every row
//! there names a setting that exists.

use std::collections::BTreeMap;

use billhook_core::config::{ReceiverSettings, command};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/configuration.md"
));

/// A row of one of the settings tables: variable(s) | flag(s) | default | what.
struct Row {
    flags: Vec<String>,
    default: String,
}

/// The settings tables' rows, by variable. Rows whose second column is not a flag (the
/// tests' and scripts' variables) are not settings of the binaries.
fn documented() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for line in DOC.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 3 || !cells[1].starts_with("`--") {
            continue;
        }
        let names = |cell: &str| -> Vec<String> {
            cell.trim_start_matches("| ")
                .split(", ")
                .map(|n| n.trim_matches('`').to_owned())
                .collect()
        };
        let flags = names(cells[1]);
        for env in names(cells[0]) {
            rows.insert(
                env,
                Row {
                    flags: flags.clone(),
                    default: cells[2].to_owned(),
                },
            );
        }
    }
    rows
}

/// (variable, flag, default) of every environment setting of both binaries.
fn settings() -> Vec<(String, String, Option<String>)> {
    let temp = std::env::temp_dir().to_string_lossy().into_owned();
    [command::<ReceiverSettings>(), command::<super::Cli>()]
        .iter()
        .flat_map(|c| c.get_arguments().cloned().collect::<Vec<_>>())
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let flag = format!("--{}", arg.get_long()?);
            let default = arg.get_default_values().first().map(|v| {
                // A default under the temporary directory is documented as $TMPDIR/….
                let v = v.to_string_lossy();
                match v.strip_prefix(temp.trim_end_matches('/')) {
                    Some(rest) => format!("$TMPDIR{rest}"),
                    None => v.into_owned(),
                }
            });
            Some((env, flag, default))
        })
        .collect()
}

#[test]
fn every_setting_is_documented_with_its_flag_and_default() {
    let doc = documented();
    for (env, flag, default) in settings() {
        let row = doc
            .get(&env)
            .unwrap_or_else(|| panic!("{env} ({flag}) is missing from docs/configuration.md"));
        assert!(
            row.flags.contains(&flag),
            "{env}: docs/configuration.md says {:?}, the command line {flag}",
            row.flags
        );
        match default {
            Some(default) => assert!(
                row.default.contains(&format!("`{default}`")),
                "{env}: docs/configuration.md says the default is {}, the command line `{default}`",
                row.default
            ),
            None => assert!(
                !row.default.contains('`'),
                "{env}: docs/configuration.md gives a default ({}), the command line none",
                row.default
            ),
        }
    }
}

#[test]
fn every_documented_setting_exists() {
    let known: Vec<String> = settings().into_iter().map(|(env, _, _)| env).collect();
    for env in documented().keys() {
        assert!(
            known.contains(env),
            "docs/configuration.md documents {env}, which neither binary reads"
        );
    }
}

#[test]
fn every_placeholder_is_its_settings_variable() {
    for c in [command::<ReceiverSettings>(), command::<super::Cli>()] {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                let names: Vec<String> = arg
                    .get_value_names()
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                assert_eq!(names, [env.to_string_lossy()], "{:?}", arg.get_long());
            }
        }
    }
}
