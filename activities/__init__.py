"""Activities: the only side-effect boundary. They call the application service."""
