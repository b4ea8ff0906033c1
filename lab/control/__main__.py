import sys

from lab.control.cli import main

sys.exit(main())
