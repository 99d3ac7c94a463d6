using SharpFuzz;
using TinyServer.Fuzz;

// Under afl-fuzz (see fuzz/run.sh): read each input from AFL, run the target; an exception is a crash.
// With file arguments: replay them (e.g. the crashes AFL found) and print what each one breaks.
if (args.Length == 0)
{
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        FuzzTarget.Run(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    });
    return 0;
}

int failed = 0;
foreach (string path in args)
{
    try
    {
        FuzzTarget.Run(File.ReadAllBytes(path));
        Console.WriteLine($"ok    {path}");
    }
    catch (Exception e)
    {
        failed++;
        Console.WriteLine($"CRASH {path}: {e.GetType().Name}: {e.Message}");
        Console.WriteLine(e.StackTrace);
    }
}

return failed == 0 ? 0 : 1;
