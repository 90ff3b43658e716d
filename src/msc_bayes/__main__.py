from msc_bayes.cli import INTERRUPTED, main, quiet_teardown

code = main()
if code in INTERRUPTED:
    quiet_teardown()
raise SystemExit(code)
