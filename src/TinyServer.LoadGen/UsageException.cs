namespace TinyServer.LoadGen;

/// <summary>Bad command-line usage: reported as one line, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
