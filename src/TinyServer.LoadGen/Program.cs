using TinyServer.LoadGen;

return Cli.Run(args, Console.Out, Console.Error);
