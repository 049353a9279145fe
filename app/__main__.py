from app.core.cli import main

main()
