import sys

from remedysweep.cli import main

sys.exit(main())
