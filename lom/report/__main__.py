import sys

from lom.report.cli import main

sys.exit(main())
