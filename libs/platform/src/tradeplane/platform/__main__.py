import sys

from tradeplane.platform.cli import main

sys.exit(main())
