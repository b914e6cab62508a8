"""`python -m casework_intake [serve | projections | rebuild NAME]`."""

from casework.service import service_main

from casework_intake.bootstrap import PORT, build

if __name__ == "__main__":
    raise SystemExit(
        service_main(
            "intake",
            PORT,
            "casework_intake.bootstrap:create_app",
            lambda settings: build(settings)[0],
        )
    )
