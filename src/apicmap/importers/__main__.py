import sys

from apicmap.importers.cli import main

sys.exit(main())
