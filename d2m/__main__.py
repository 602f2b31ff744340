import sys

from d2m.cli import main

sys.exit(main())
