//! Generated invalid XML against the reference's two lax SDK defects: the scenario fails
//! with a minimal counter-example whose rule is one the defect lets through (the defect
//! matrix checks the requirement verdicts; this checks the scenario and its evidence).

use super::util::run;

#[test]
fn each_lax_defect_is_caught_with_a_counter_example_it_lets_through() {
    for (defect, family) in [
        ("accept-xsd-invalid", &["xsd:", "provsten:"][..]),
        ("ignore-schematron", &["schematron:"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), &["--tags", "@req:SDK-SPEC", "--defect", defect]);
        let scenarios = r.report()["scenarios"].as_array().unwrap().clone();
        let s = scenarios
            .iter()
            .find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("generated invalid SDK messages"))
            })
            .unwrap_or_else(|| panic!("{defect}: no generated scenario: {}", r.explain()));
        assert_eq!(s["status"], "failed", "{defect}: {}", r.explain());
        let c = s["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e.get("counter_example"))
            .unwrap_or_else(|| panic!("{defect}: no counter-example: {s}"));
        let rule = c["rule"].as_str().unwrap();
        assert!(family.iter().any(|f| rule.starts_with(f)), "{defect}: {c}");
        assert_eq!(c["mutations"].as_array().unwrap().len(), 1, "{defect}: {c}");
        assert_eq!(c["shrink_cut_short"], false, "{defect}: {c}");
        assert!(
            c["document_bytes"].as_u64().unwrap() < c["example_bytes"].as_u64().unwrap(),
            "{defect}: {c}"
        );
    }
}
