from apicmap.app.cli import main

raise SystemExit(main())
