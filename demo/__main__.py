import sys

from demo.servers import main

sys.exit(main())
