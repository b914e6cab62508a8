"""`python -m casework_cases [serve | projections | rebuild NAME]`."""

from casework.service import service_main

from casework_cases.bootstrap import PORT, build

if __name__ == "__main__":
    raise SystemExit(
        service_main(
            "cases",
            PORT,
            "casework_cases.bootstrap:create_app",
            lambda settings: build(settings)[0],
        )
    )
