from msc_bayes.cli import main

raise SystemExit(main())
