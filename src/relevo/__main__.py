from relevo.cli import app

app()
