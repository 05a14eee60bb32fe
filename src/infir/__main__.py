from infir.cli import main

raise SystemExit(main())
