from ..cli.main import cli
import toolkit.cli.output
