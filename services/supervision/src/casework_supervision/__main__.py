"""`python -m casework_supervision [serve | projections | rebuild NAME]`."""

from casework.service import service_main

from casework_supervision.bootstrap import PORT, build

if __name__ == "__main__":
    raise SystemExit(
        service_main(
            "supervision",
            PORT,
            "casework_supervision.bootstrap:create_app",
            lambda settings: build(settings)[0],
        )
    )
