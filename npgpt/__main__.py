"""`python -m npgpt`: the same as the `npgpt` command."""

import sys

from npgpt.cli import main

sys.exit(main())
