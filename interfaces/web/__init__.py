"""The web pages for caseworkers, housing pilots and supervisors: server-rendered, in Swedish
(English and Norwegian bokmål too), each page calling one use case of the application layer."""
