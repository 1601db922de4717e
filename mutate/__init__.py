"""Mutation testing of alos's authority modules: ``python -m mutate`` (or ``make mutate``).

Each mutant (``mutate.mutants``) is applied in a private copy of src/ and tests/
(``mutate.sandbox``) and met with the tests that reach its lines (``mutate.reach``, measured
in one traced baseline run); a mutant no test fails survives. Reports, never gates: the exit
status is 0 unless the unmutated baseline fails. Not part of alos: nothing in src/ imports it.
"""

TARGETS = (
    "src/alos/rights.py",
    "src/alos/caps.py",
    "src/alos/syscall.py",
    "src/alos/kernel/approval.py",
    "src/alos/kernel/action.py",
    "src/alos/shellforms.py",
    "src/alos/git.py",
    "src/alos/primitives/shell.py",
    "src/alos/primitives/obj.py",
    "src/alos/primitives/ns.py",
    "src/alos/kernel/ckpt.py",
    "src/alos/primitives/tool.py",
    "src/alos/tooljit.py",
    "src/alos/providers/jitwire.py",
    "src/alos/console/access.py",
    "src/alos/console/acts.py",
)
# the tests that exercise authority: unit tests and the scenarios of dispatch, grants, approvals,
# processes, turns and recovery, and the CLI runs that show decisions (a few minutes traced on a
# 2-core machine; each mutant runs only the tests that reach its lines)
POOL = (
    "tests/unit",
    "tests/scenarios/test_authority_rules.py",
    "tests/scenarios/test_dispatch_authority.py",
    "tests/scenarios/test_recovery.py",
    "tests/scenarios/test_turns.py",
    "tests/scenarios/test_processes.py",
    "tests/scenarios/test_process_races.py",
    "tests/scenarios/test_scheduling.py",
    "tests/scenarios/test_bb_grants.py",
    "tests/scenarios/test_bb_approvals.py",
    "tests/scenarios/test_bb_processes.py",
    "tests/scenarios/test_cli_run.py",
    "tests/scenarios/test_model_repairs.py",
    "tests/scenarios/test_image_registry.py",
    "tests/scenarios/test_objects.py",
    "tests/scenarios/test_checkpoints.py",
    "tests/scenarios/test_bb_objects.py",
    "tests/scenarios/test_bb_checkpoints.py",
    "tests/scenarios/test_model_image_hostile.py",
    "tests/scenarios/test_shell.py",
    "tests/scenarios/test_bb_shell.py",
    "tests/scenarios/test_net_fetch.py",
    "tests/scenarios/test_jit.py",
    "tests/scenarios/test_bb_jit.py",
    "tests/scenarios/test_redteam_jit.py",
    "tests/scenarios/test_bb_console.py",
    "tests/scenarios/test_redteam_console.py",
)
