from ltbench.app.cli import main

raise SystemExit(main())
