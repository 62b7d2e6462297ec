import sys

from lom.collect.collection import main

sys.exit(main())
