from browser_sessions.cli import main

raise SystemExit(main())
