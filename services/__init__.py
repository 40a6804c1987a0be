"""The pipeline stages. Each stage is ``load_x(settings)`` plus a verb on the frozen values
in :mod:`services.domain`. Nothing here touches the database, storage, Redis or the API."""
