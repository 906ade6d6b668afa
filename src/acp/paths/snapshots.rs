//! Table-driven rewrite tests: each case in `cases.json` is a method, an input payload and the
//! payload expected after rewriting (or the path an agent request is refused for), all under one
//! session's map. Every case runs; the failures are reported together.

use serde::Deserialize;
use serde_json::Value;

use super::{PathError, PathMap};

#[derive(Deserialize)]
struct Table {
    map: MapSpec,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct MapSpec {
    host_cwd: String,
    workspace: String,
    extra: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Direction {
    ClientToAgent,
    AgentToClient,
    AgentResult,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    direction: Direction,
    method: String,
    input: Value,
    #[serde(default)]
    expected: Option<Value>,
    /// For agent requests that must be refused: the path named in the error.
    #[serde(default)]
    refused: Option<String>,
    /// For client payloads: how many warnings the rewrite returns.
    #[serde(default)]
    warnings: usize,
}

/// What a case produced, in a form that compares against its expectations.
#[derive(Debug, PartialEq)]
enum Outcome {
    Rewritten { payload: Value, warnings: usize },
    Refused(String),
}

fn run(map: &PathMap, case: &Case) -> Outcome {
    let mut payload = case.input.clone();
    match case.direction {
        Direction::ClientToAgent => {
            let warnings = map
                .rewrite_client_to_agent(&case.method, &mut payload)
                .len();
            Outcome::Rewritten { payload, warnings }
        }
        Direction::AgentToClient => match map.rewrite_agent_to_client(&case.method, &mut payload) {
            Ok(()) => Outcome::Rewritten {
                payload,
                warnings: 0,
            },
            Err(PathError::OutsideRoots { path }) => Outcome::Refused(path),
        },
        Direction::AgentResult => {
            map.rewrite_agent_result(&case.method, &mut payload);
            Outcome::Rewritten {
                payload,
                warnings: 0,
            }
        }
    }
}

fn expected(case: &Case) -> Outcome {
    match (&case.refused, &case.expected) {
        (Some(path), None) => Outcome::Refused(path.clone()),
        (None, Some(payload)) => Outcome::Rewritten {
            payload: payload.clone(),
            warnings: case.warnings,
        },
        _ => panic!(
            "case {:?} needs exactly one of `expected` and `refused`",
            case.name
        ),
    }
}

#[test]
fn rewrite_table() {
    let table: Table = serde_json::from_str(include_str!("cases.json")).expect("cases.json parses");
    let map = PathMap::for_session(
        &table.map.host_cwd,
        &table.map.workspace,
        table.map.extra.clone(),
    )
    .expect("the table's map is valid");
    let failures: Vec<String> = table
        .cases
        .iter()
        .filter_map(|case| {
            let (got, want) = (run(&map, case), expected(case));
            (got != want).then(|| {
                format!(
                    "{} ({}):\n  got  {got:?}\n  want {want:?}",
                    case.name, case.method
                )
            })
        })
        .collect();
    assert!(table.cases.len() >= 15, "the table has lost cases");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}
